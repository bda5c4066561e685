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

from ...errors import StorageError
from ...kernel import InstanceNotFound
from . import mailbox
from .dbfile import check_schema, open_read_only, parse_db_url
from .outbox_rows import select_outbox
from .public_rows import (
    DamagedRecord,
    check_replayable,
    count_instances,
    decoded_history,
    json_column,
    public_instance,
    select_instance_rows,
    status_counts,
    workflow_names,
)
from .store import Storage

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
        conn.text_factory = _stored_text
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

    def listed_instance(self, instance_id: str) -> dict[str, Any]:
        """The instance as :meth:`list_instances` gives it (a damaged row as damaged)."""
        with self._reading() as db:
            return _listed(self._row(db, instance_id))

    def list_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = None,
        search: str | None = None,
        parent: str | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Instances newest first, filtered and paged as ``Store.list_instances``. A row that
        cannot be read does not hide the others: it comes as ``instance_id``, ``workflow_name``,
        ``status`` (as stored) and ``damaged`` (why)."""
        with self._reading() as db:
            rows = select_instance_rows(
                db,
                statuses=status,
                workflow=workflow,
                limit=limit,
                search=search,
                parent=parent,
                before=before,
                after=after,
            )
        return [_listed(row) for row in rows]

    def count_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        search: str | None = None,
        parent: str | None = None,
    ) -> int:
        with self._reading() as db:
            return count_instances(
                db, statuses=status, workflow=workflow, search=search, parent=parent
            )

    def status_counts(
        self, *, workflow: str | None = None, search: str | None = None
    ) -> dict[str, int]:
        with self._reading() as db:
            return status_counts(db, workflow=workflow, search=search)

    def workflow_names(self) -> list[str]:
        with self._reading() as db:
            return workflow_names(db)

    def mailbox_rows(self, instance_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The instance's mailbox rows, oldest first, as ``Store.mailbox_rows`` gives them."""
        with self._reading() as db:
            return mailbox.rows(db, instance_id, limit)

    # -- histories --

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """Decoded history rows (JSON values, aware datetimes), oldest first."""
        with self._reading() as db:
            self._row(db, instance_id)
            rows = self._storage.history_rows(db, instance_id)
        return decoded_history(rows)

    def stored(self, instance_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        """The instance's row and history rows, as a replay needs them. Their columns are
        checked first, so a damaged record is named (``DamagedRecord``) rather than failing
        somewhere inside the replay."""
        with self._reading() as db:
            row = self._row(db, instance_id)
            rows = self._storage.history_rows(db, instance_id)
        check_replayable(row, rows)
        return row, rows

    # -- outbox --

    def outbox(
        self,
        *,
        status: Sequence[str] | None = None,
        limit: int = 100,
        instance_id: str | None = None,
    ) -> list[dict[str, Any]]:
        with self._reading() as db:
            try:
                return select_outbox(db, statuses=status, limit=limit, instance_id=instance_id)
            except (ValueError, TypeError, RecursionError):  # a row's data is not JSON: name it
                raise _damaged_outbox_row(db) from None


def _stored_text(data: bytes) -> str:
    """TEXT as stored: bytes that are not UTF-8 (a hand edit) come back as lone surrogates,
    which the CLI prints escaped, instead of failing the whole query (every row of a list)."""
    return data.decode("utf-8", "surrogateescape")


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    try:
        return public_instance(row)
    except DamagedRecord as exc:
        return {
            "instance_id": row.get("instance_id"),
            "workflow_name": row.get("workflow_name"),
            "status": row.get("status"),
            "damaged": str(exc),
        }


def _damaged_outbox_row(db: sqlite_utils.Database) -> DamagedRecord | StorageError:
    for oid, event_id, instance_id, seq, data in db.execute(
        "SELECT id, event_id, instance_id, seq, data FROM outbox ORDER BY id"
    ):
        record = f"outbox row {oid} (seq {seq!r}, event {event_id})"
        try:
            json_column(data, instance_id, record, "data")
        except DamagedRecord as exc:
            return exc
    return StorageError("an outbox row cannot be read")
