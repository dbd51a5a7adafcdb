"""Storage engines behind :class:`dash_database.DashDatabase`, one module each."""
