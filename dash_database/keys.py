"""What a user id or a key name may be, and how it is checked."""

from __future__ import annotations

#: A user id or a key name. ``123`` and ``"123"`` are different, as in a dict.
Key = str | int


def check_key(argument: str, value: object) -> Key:
    """Return ``value`` if it is a valid id or key name, else raise ``TypeError``.

    :param argument: the argument's name, quoted in the error message.
    :param value: what the caller passed.
    :raises TypeError: ``value`` is not a ``str`` or an ``int``, or is a ``bool``.
    """
    # bool is a subclass of int; True would silently become user 1.
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(
            f"{argument} must be a str or an int, not {type(value).__name__} "
            f"({value!r}); convert it first, e.g. {argument}=str(...)"
        )
    return value


def sort_keys(keys: list[Key]) -> list[Key]:
    """Sort ids or key names the documented way: ints numerically, then strs by code point."""
    return sorted(keys, key=lambda k: (isinstance(k, str), k))
