"""``SharedStorage``, or on a Dash without shared storage (before 4.5) a stand-in: the name
imports on every Dash, and constructing it says which Dash it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import DependencyMissingError
from . import dash_api

if TYPE_CHECKING or dash_api.AVAILABLE:
    from .storage import SharedStorage
else:

    class SharedStorage:
        """Dash's shared storage, which needs Dash 4.5 or later."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise DependencyMissingError(
                f"SharedStorage needs Dash 4.5 or later (Dash(shared_storage=...)); this is "
                f'Dash {dash_api.version()}: pip install "dash>=4.5"'
            )


__all__ = ["SharedStorage"]
