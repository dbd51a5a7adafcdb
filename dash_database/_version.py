"""The package version, in one place for setup.py and the package."""

__version__ = "2.3.0"
