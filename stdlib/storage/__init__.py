"""Storage: everything eddic keeps, behind one class per backend, chosen once from the URL.

The runtime, the relay, replay and the CLI reach storage through the names exported here; SQL
text and database drivers live only under this package (``tests/test_layering.py`` pins it).
Today the one backend is SQLite (``storage/sqlite``).
"""

from __future__ import annotations

from .sqlite.dbfile import StorageError
from .sqlite.public_rows import DamagedRecord
from .sqlite.steps import LeaseLost, StepWrite
from .sqlite.store import Storage

__all__ = ["DamagedRecord", "LeaseLost", "StepWrite", "Storage", "StorageError"]
