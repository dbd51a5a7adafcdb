"""Values as JSON that holds the data itself: what ``dash-database export`` writes.

JSON-native values are written as they are. A value JSON cannot hold exactly
is wrapped in an object whose ``"$type"`` names what it was:

* ``{"$type": "tuple", "items": [...]}``, and likewise ``"set"``, ``"frozenset"``;
* ``{"$type": "bytes", "base64": "..."}`` (also ``"bytearray"``);
* ``{"$type": "dict", "items": [[key, value], ...]}`` for a dict with a key that is not a str;
* ``{"$type": "float", "value": "nan"}`` (``"inf"``, ``"-inf"``);
* ``{"$type": "datetime", "value": "2026-11-29T12:00:00+00:00"}`` (also ``"date"``, ``"time"``);
* ``{"$type": "pandas.DataFrame", "index": [...], "columns": [...], "data": [[...], ...]}``;
* ``{"$type": "pandas.Series", "name": ..., "index": [...], "data": [...]}``;
* ``{"$type": "numpy.ndarray", "dtype": "float64", "data": [...]}`` (nested lists);
* ``{"$type": "unsupported", "type": "...", "reason": "..."}`` for anything else.
"""

from __future__ import annotations

import base64
import datetime
import math
from typing import Any

_SEQUENCES: dict[type, str] = {tuple: "tuple", set: "set", frozenset: "frozenset"}


def type_name(value: Any) -> str:
    """The value's type as the CLI shows it: ``dict``, or ``pandas.core.frame.DataFrame``."""
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def to_json(value: Any) -> Any:
    """``value`` as JSON-native data, wrapping what JSON cannot hold exactly (see the module)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"$type": "float", "value": repr(value)}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: to_json(item) for key, item in value.items()}
        return {"$type": "dict", "items": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if type(value) in _SEQUENCES:
        return {"$type": _SEQUENCES[type(value)], "items": [to_json(item) for item in value]}
    if isinstance(value, (bytes, bytearray)):
        encoded = base64.b64encode(value).decode()
        return {"$type": type(value).__name__, "base64": encoded}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        kind = "datetime" if isinstance(value, datetime.datetime) else type(value).__name__
        return {"$type": kind, "value": value.isoformat()}
    return _library_value(value)


def _library_value(value: Any) -> Any:
    """pandas and numpy values, found by their type's package and name: neither is a dependency."""
    package, name = type(value).__module__.split(".")[0], type(value).__name__
    if (package, name) == ("pandas", "DataFrame"):
        split = value.to_dict(orient="split")
        return {
            "$type": "pandas.DataFrame",
            "index": to_json(list(split["index"])),
            "columns": to_json(list(split["columns"])),
            "data": to_json([list(row) for row in split["data"]]),
        }
    if (package, name) == ("pandas", "Series"):
        return {
            "$type": "pandas.Series",
            "name": to_json(value.name),
            "index": to_json(list(value.index)),
            "data": to_json(list(value)),
        }
    if (package, name) == ("numpy", "ndarray"):
        return {
            "$type": "numpy.ndarray",
            "dtype": str(value.dtype),
            "data": to_json(value.tolist()),
        }
    if package == "numpy" and hasattr(value, "item"):
        return to_json(value.item())  # a numpy scalar
    if (package, name) == ("pandas", "NaTType"):
        return None
    return {
        "$type": "unsupported",
        "type": type_name(value),
        "reason": "no faithful JSON form; read it in Python with DashDatabase",
    }
