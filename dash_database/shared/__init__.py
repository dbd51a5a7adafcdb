"""Dash's shared storage (Dash 4.5's ``Dash(shared_storage=...)``) in a dash_database store:
:class:`~.storage.SharedStorage`, imported from :mod:`.available` on every Dash.
"""
