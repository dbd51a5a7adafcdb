"""``python -m dash_database``: the operator's command line (see :mod:`dash_database.cli`)."""

from .cli import main

raise SystemExit(main())
