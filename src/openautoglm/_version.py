"""The package version (a leaf: the face re-exports it, ``engine.install`` checks it on workers)."""

__version__ = "0.1.0"
