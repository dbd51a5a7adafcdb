"""How a value is addressed: what a user id or a key name may be, and how it is checked."""

from __future__ import annotations

import enum
import json

#: A user id or a key name. ``123`` and ``"123"`` are different, as in a dict.
Key = str | int
#: Whose value a record is: ``(user_id, key_name)``.
Where = tuple[Key, Key]


class Missing(enum.Enum):
    """Marks "no value stored" where ``None`` is a valid stored value."""

    MISSING = enum.auto()


MISSING = Missing.MISSING

#: The largest int id, in bits: its text stays under Python's 4,300-digit
#: int-to-str limit (2**14_000 has 4,215 digits).
MAX_INT_BITS = 14_000


def check_key(argument: str, value: object) -> Key:
    """Return ``value`` if it is a valid id or key name, else raise ``TypeError``.

    :param argument: the argument's name, quoted in the error message.
    :param value: what the caller passed.
    :raises TypeError: ``value`` is not a ``str`` or an ``int``, or is a ``bool``.
    :raises ValueError: ``value`` is an int too long to write as text.
    """
    # bool is a subclass of int; True would silently become user 1.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(
            f"{argument} must be a str or an int, not {type(value).__name__} "
            f"({value!r}); convert it first, e.g. {argument}=str(...)"
        )
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError(
            f"{argument} is an int of more than 4,200 digits, which cannot be stored as text; "
            f"pass a shorter id, or a str"
        )
    return value


def encode_key(value: Key) -> str:
    """The JSON text of an id or key name, as ``json.dumps`` writes it.

    Storage keys are built from it on every call; ``json.dumps`` takes its slow
    general path for an int (3 us here against 0.2 us for ``str``).
    """
    return str(value) if type(value) is int else json.dumps(value)


def decode_key(text: str | bytes) -> Key:
    """The id or key name whose :func:`encode_key` text is ``text``."""
    # An encoded key is a JSON string or a JSON int; int() reads the latter faster.
    return json.loads(text) if text[:1] in ('"', b'"') else int(text)


def sort_keys(keys: list[Key]) -> list[Key]:
    """Sort ids or key names the documented way: ints numerically, then strs by code point."""
    return sorted(keys, key=lambda k: (isinstance(k, str), k))
