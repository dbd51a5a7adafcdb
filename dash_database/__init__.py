"""Per-user values for Plotly Dash apps, kept on the server between callbacks."""

from ._version import __version__
from .database import DashDatabase, UserValues
from .sessions import Stats, UserStats, new_session_id

__all__ = ["DashDatabase", "Stats", "UserStats", "UserValues", "__version__", "new_session_id"]
