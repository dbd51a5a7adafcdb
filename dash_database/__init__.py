"""Per-user values for Plotly Dash apps, kept on the server between callbacks."""

from ._version import __version__
from .database import DashDatabase, UserValues

__all__ = ["DashDatabase", "UserValues", "__version__"]
