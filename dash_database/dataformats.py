"""The code-free serializer, ``serializer="data"``: formats that never run code when read.

Each value is written in the first format that fits it, named by its record's kind
(see :mod:`.records`):

* ``B``: ``bytes``, as they are;
* ``J``: a JSON value (``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``float``,
  ``bool``, ``None``), as JSON;
* ``T``: JSON with its types kept: ``tuple``, ``set``, ``frozenset``, ``bytes`` and
  ``bytearray`` inside other values, ``datetime``, ``date``, ``time``, ``timedelta``,
  ``Decimal``, ``UUID``, non-finite floats and dicts with keys other than ``str``;
* ``A``: a pandas ``DataFrame`` or ``Series`` (index, columns, dtypes, categoricals,
  time zones), as an Arrow IPC stream (pyarrow 14.0.1 or later: older ones unpickle
  extension types on read, CVE-2023-47248);
* ``N``: a NumPy array whose dtype holds no Python objects, as ``.npy``.

Anything else is refused when stored. Reading never imports or calls anything the data
names: tagged JSON maps a fixed table of type names, Arrow extension types are refused,
and ``.npy`` data is read as bytes after its header, which may not name objects. A
length read from the data is never allocated up front: bytes are gathered as they arrive.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import math
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from .exceptions import DependencyMissingError, DeserializationError, SerializationError

#: The kinds of records this serializer writes.
KINDS = (b"B", b"J", b"T", b"A", b"N")
#: Bytes read at a time from a stored value.
PIECE = 1 << 20
_TAG = "$t"
_JSON_SCALARS = (str, int, float, bool, type(None))


class Readable(Protocol):
    """What values are read from."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """What values are written to."""

    def write(self, data: Any) -> int: ...


def _is_json(value: Any) -> bool:
    if isinstance(value, _JSON_SCALARS):
        return not isinstance(value, float) or math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _pandas_or_numpy(value: Any) -> bytes | None:
    """``A`` or ``N`` for a frame, a series or an array; ``None`` otherwise (never imports)."""
    module = type(value).__module__.split(".")[0]
    if module == "pandas" and type(value).__name__ in ("DataFrame", "Series"):
        return b"A"
    if module == "numpy" and type(value).__name__ == "ndarray":
        return b"N"
    return None


def kind_of(value: Any) -> bytes:
    """The kind this serializer writes ``value`` as.

    :raises SerializationError: a value no format here holds.
    """
    if type(value) is bytes:
        return b"B"
    table = _pandas_or_numpy(value)
    if table is not None:
        return table
    if _is_json(value):
        return b"J"
    _typed(value, "value")  # raises for what even typed JSON cannot hold
    return b"T"


def dump(value: Any, kind: bytes, out: Writable) -> None:
    """Write ``value`` in the format ``kind`` to ``out``.

    :raises SerializationError: the value does not fit (an array of objects...).
    """
    if kind == b"B":
        out.write(value)
    elif kind == b"J":
        out.write(json.dumps(value, ensure_ascii=False).encode())
    elif kind == b"T":
        out.write(json.dumps(_typed(value, "value"), ensure_ascii=False).encode())
    elif kind == b"A":
        _dump_table(value, out)
    else:
        _dump_array(value, out)


def load(kind: bytes, file: Readable) -> Any:
    """The value of format ``kind`` read from ``file``.

    :raises DeserializationError: damaged, or data this serializer does not read.
    """
    if kind == b"B":
        return bytes(_read_all(file))
    if kind == b"J":
        return json.loads(_read_all(file))
    if kind == b"T":
        return json.loads(_read_all(file), object_hook=_untyped)
    if kind == b"A":
        return _load_table(file)
    if kind == b"N":
        return _load_array(file)
    raise DeserializationError(f"stored record has unknown kind {kind!r}; it is damaged")


def _read_all(file: Readable) -> bytearray:
    """Every byte left in ``file``, gathered piece by piece into one buffer that grows in
    place (a large one is remapped, never copied whole), sized by nothing the data claims."""
    data = bytearray()
    while piece := file.read(PIECE):
        data += piece
    return data


# Typed JSON: every value that JSON cannot hold exactly is an object {"$t": name, "v": ...};
# a dict with a "$t" key of its own, or a key that is not a str, is one too ("dict").
_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    tuple: ("tuple", list),
    set: ("set", list),
    frozenset: ("frozenset", list),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode()),
    bytearray: ("bytearray", lambda v: base64.b64encode(v).decode()),
    datetime.datetime: ("datetime", lambda v: v.isoformat()),
    datetime.date: ("date", lambda v: v.isoformat()),
    datetime.time: ("time", lambda v: v.isoformat()),
    datetime.timedelta: ("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
    decimal.Decimal: ("Decimal", str),
    uuid.UUID: ("UUID", str),
    float: ("float", repr),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "tuple": tuple,
    "set": set,
    "frozenset": frozenset,
    "bytes": lambda v: base64.b64decode(v, validate=True),
    "bytearray": lambda v: bytearray(base64.b64decode(v, validate=True)),
    "datetime": datetime.datetime.fromisoformat,
    "date": datetime.date.fromisoformat,
    "time": datetime.time.fromisoformat,
    "timedelta": lambda v: datetime.timedelta(*v),
    "Decimal": decimal.Decimal,
    "UUID": uuid.UUID,
    "float": float,
    "dict": dict,
}
_CONTAINERS = (tuple, set, frozenset)


def _typed(value: Any, path: str) -> Any:
    """``value`` as JSON-native data, tagging what JSON cannot hold exactly."""
    kind = type(value)
    if kind in (str, int, bool, type(None)) or (kind is float and math.isfinite(value)):
        return value
    if kind is list:
        return [_typed(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind is dict:
        if all(type(k) is str for k in value) and _TAG not in value:
            return {k: _typed(v, f"{path}[{k!r}]") for k, v in value.items()}
        items = [[_typed(k, f"{path} key"), _typed(v, f"{path}[{k!r}]")] for k, v in value.items()]
        return {_TAG: "dict", "v": items}
    if kind in _ENCODERS:
        name, encode = _ENCODERS[kind]
        inner = encode(value)
        if kind in _CONTAINERS:
            inner = [_typed(item, f"{path}[{index}]") for index, item in enumerate(inner)]
        return {_TAG: name, "v": inner}
    raise SerializationError(
        f"{path} is a {kind.__module__}.{kind.__qualname__}; serializer='data' stores bytes, "
        "JSON values, tuple, set, frozenset, bytearray, datetime, date, time, timedelta, "
        "Decimal, UUID, pandas DataFrame and Series, and NumPy arrays without objects. "
        "Convert it, or use serializer='pickle' (with a secret_key)"
    )


def _untyped(obj: dict[str, Any]) -> Any:
    if _TAG not in obj:
        return obj
    decode = _DECODERS.get(obj[_TAG]) if isinstance(obj[_TAG], str) else None
    if decode is None or set(obj) != {_TAG, "v"}:
        raise DeserializationError(f"stored value has an unknown tag {obj[_TAG]!r}; damaged")
    try:
        return decode(obj["v"])
    except (TypeError, ValueError) as exc:
        raise DeserializationError(f"stored {obj[_TAG]} cannot be read back: {exc}") from exc


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise DependencyMissingError(
            'DataFrames with serializer="data" need pyarrow: pip install "dash_database[data]"'
        ) from exc
    version = tuple(int(part) for part in pyarrow.__version__.split(".")[:3] if part.isdigit())
    if version < (14, 0, 1):
        raise DependencyMissingError(
            f"pyarrow {pyarrow.__version__} unpickles extension types on read "
            '(CVE-2023-47248); pip install "pyarrow>=14.0.1"'
        )
    return pyarrow


class _File:
    """A write-only file for pyarrow, over one of ours."""

    closed = False

    def __init__(self, inner: Writable) -> None:
        self._inner = inner

    def write(self, data: Any) -> int:
        return int(self._inner.write(data))

    def flush(self) -> None:
        """Nothing to flush: every write went through."""


_SERIES = b"dash_database.series"


def _dump_table(value: Any, out: Writable) -> None:
    pa = _pyarrow()
    series = type(value).__name__ == "Series"
    frame = (
        value.to_frame(name="__series__" if value.name is None else value.name) if series else value
    )
    try:
        # A RangeIndex is kept as metadata, any other index as columns.
        table = pa.Table.from_pandas(frame)
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise SerializationError(
            f"the {type(value).__name__} cannot be stored as Arrow: {exc}"
        ) from exc
    if series:
        meta = {
            **(table.schema.metadata or {}),
            _SERIES: b"none" if value.name is None else b"named",
        }
        table = table.replace_schema_metadata(meta)
    with pa.ipc.new_stream(pa.PythonFile(_File(out), mode="w"), table.schema) as writer:
        writer.write_table(table)


def _has_extension(pa: Any, types: Any) -> bool:
    for kind in types:
        if isinstance(kind, pa.ExtensionType):
            return True
        if _has_extension(pa, (kind.field(i).type for i in range(kind.num_fields))):
            return True
    return False


def _load_table(file: Readable) -> Any:
    pa = _pyarrow()
    try:
        # The whole stream in one buffer, which the frame's columns then share where
        # their types allow (numbers, dates, Arrow strings): no second copy.
        reader = pa.ipc.open_stream(pa.py_buffer(_read_all(file)))
        if _has_extension(pa, reader.schema.types):
            raise DeserializationError("stored table has an Arrow extension type; refused")
        table = reader.read_all()
        marker = (table.schema.metadata or {}).get(_SERIES)
        frame = table.to_pandas(split_blocks=True)
    except pa.ArrowException as exc:
        raise DeserializationError(f"stored table cannot be read back: {exc}") from exc
    if marker is None:
        return frame
    series = frame.iloc[:, 0]
    return series.rename(None) if marker == b"none" else series


def _dump_array(value: Any, out: Writable) -> None:
    import numpy as np

    if value.dtype.hasobject:
        raise SerializationError(
            f"a NumPy array of dtype {value.dtype} holds Python objects; serializer='data' "
            "stores arrays of numbers, bools, strings and structured dtypes without objects"
        )
    np.lib.format.write_array(out, value, allow_pickle=False)


def _load_array(file: Readable) -> Any:
    import numpy as np

    try:
        version = np.lib.format.read_magic(file)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(file)
    except ValueError as exc:
        raise DeserializationError(f"stored array cannot be read back: {exc}") from exc
    if dtype.hasobject:
        raise DeserializationError("stored array names Python objects; refused")
    size = dtype.itemsize * math.prod(shape)
    data = bytearray()  # grown as bytes arrive (a large one in place), never sized by the header
    while len(data) < size:
        piece = file.read(min(PIECE, size - len(data)))
        if not piece:
            raise DeserializationError(
                f"stored array is cut short: {len(data):,} of {size:,} bytes; it is damaged"
            )
        data += piece
    array = np.frombuffer(data, dtype=dtype) if size else np.empty(0, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")
