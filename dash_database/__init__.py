"""Per-user values for Plotly Dash apps, kept on the server between callbacks."""

from ._version import __version__
from .database import DashDatabase
from .inspection import Inspector, UserSummary
from .sessions import Stats, UserStats, new_session_id
from .user_values import UserValues

__all__ = [
    "DashDatabase",
    "Inspector",
    "Stats",
    "UserStats",
    "UserSummary",
    "UserValues",
    "__version__",
    "new_session_id",
]
