"""The one place that imports Dash's shared-storage interface (Dash 4.5 and later).

``dash._shared_storage`` is private to Dash, and absent before 4.5: whatever of it this
package uses is imported here, and nowhere else, so that a change in Dash is met in one
file and ``dash_database.dash`` still imports on Dash 4.4.
"""

from __future__ import annotations

from importlib import metadata

try:
    from dash._shared_storage.base import (
        MIN_TOPIC_TTL,
        BaseSharedStorage,
        SharedStorageError,
        SharedStorageGap,
        Subscription,
    )
    from msgspec import msgpack
except ImportError:  # Dash before 4.5, or none
    AVAILABLE = False
else:
    AVAILABLE = True

__all__ = [
    "AVAILABLE",
    "MIN_TOPIC_TTL",
    "BaseSharedStorage",
    "SharedStorageError",
    "SharedStorageGap",
    "Subscription",
    "msgpack",
    "version",
]


def version() -> str:
    """The version of Dash installed."""
    try:
        return metadata.version("dash")
    except metadata.PackageNotFoundError:
        return "(none installed)"
