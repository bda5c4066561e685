"""An eddic database opened read-only, for inspection (``eddic list``, ``show``, ``replay``, ...).

The connection is opened with SQLite's ``mode=ro`` (``dbfile.open_read_only``), so nothing here
can write, whatever happens: inspecting a production file is safe, even without write permission
on it or its folder. A file that is missing, not SQLite, not eddic's, corrupt or from a newer
schema is refused with an error naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from .dbfile import StorageError, check_schema, open_read_only, parse_db_url
from .decorators import Workflow
from .kernel import InstanceNotFound
from .outbox import select_outbox
from .public_rows import decoded_history, public_instance, select_instances
from .replay import Replay
from .storage import Storage

__all__ = ["ReadOnlyDatabase"]


class ReadOnlyDatabase:
    """Read access to one eddic database file."""

    def __init__(self, db_url: str) -> None:
        path = parse_db_url(db_url)
        if path == ":memory:":
            raise StorageError(
                "an in-memory database lives only inside the process that created it; "
                "point --db at a file"
            )
        self.path = path
        if not os.path.exists(path):
            raise StorageError(f"no database at {path!r} (check --db or EDDIC_DB)")
        conn = open_read_only(path)
        try:
            check_schema(conn, path, allow_empty=False)
        except StorageError:
            conn.close()
            raise
        self.db = sqlite_utils.Database(conn)
        self._storage = Storage(db_url)  # never opened: only its row readers are used

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ReadOnlyDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite_utils.Database]:
        self.db.conn.execute("BEGIN")
        try:
            yield self.db
        finally:
            self.db.conn.execute("COMMIT")

    # -- instances --

    def _row(self, db: sqlite_utils.Database, instance_id: str) -> dict[str, Any]:
        row = self._storage.instance_row(db, instance_id)
        if row is None:
            raise InstanceNotFound(f"no workflow instance with id {instance_id!r} in {self.path}")
        return row

    def instance(self, instance_id: str) -> dict[str, Any]:
        with self._reading() as db:
            return public_instance(self._row(db, instance_id))

    def list_instances(
        self,
        *,
        status: Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        with self._reading() as db:
            return select_instances(db, statuses=status, workflow=workflow, limit=limit)

    # -- histories --

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """Decoded history rows (JSON values, aware datetimes), oldest first."""
        with self._reading() as db:
            self._row(db, instance_id)
            rows = self._storage.history_rows(db, instance_id)
        return decoded_history(rows)

    def replay(self, instance_id: str, workflow: Workflow[Any] | None = None) -> Replay:
        """The instance's replay through the code registered in this process."""
        with self._reading() as db:
            row = self._row(db, instance_id)
            rows = self._storage.history_rows(db, instance_id)
        return Replay.from_rows(row, rows, workflow)

    # -- outbox --

    def outbox(
        self, *, status: Sequence[str] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        with self._reading() as db:
            return select_outbox(db, statuses=status, limit=limit)
