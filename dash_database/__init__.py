"""Per-user values for Plotly Dash apps, kept on the server between callbacks."""

from ._version import __version__
from .async_database import AsyncDashDatabase
from .async_inspection import AsyncInspector
from .async_user_values import AsyncUserValues
from .database import DashDatabase
from .inspection import Inspector
from .sessions import new_session_id
from .stats import Stats, UserStats, UserSummary
from .user_values import UserValues

__all__ = [
    "AsyncDashDatabase",
    "AsyncInspector",
    "AsyncUserValues",
    "DashDatabase",
    "Inspector",
    "Stats",
    "UserStats",
    "UserSummary",
    "UserValues",
    "__version__",
    "new_session_id",
]
