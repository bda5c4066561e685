"""What the read-only commands ask of a database, answered through the storage interface:
the reader for backends other than an SQLite file (PostgreSQL), which has no file to open
read-only. It offers what ``storage.sqlite.dbview.ReadOnlyDatabase`` offers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..codec import decode_records
from ..debug.replay import Replay
from ..decorators import Workflow
from ..errors import DamagedRecord, EddicError
from ..storage import HISTORY_FIELDS, Store, check_replayable, history_record, open_store


class Reader(Protocol):
    """The read-only view the CLI works with, whatever the backend."""

    def instance(self, instance_id: str) -> dict[str, Any]: ...

    def listed_instance(self, instance_id: str) -> dict[str, Any]: ...

    def list_instances(
        self,
        *,
        status: Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...

    def count_instances(
        self, *, status: Sequence[str] | None = None, workflow: str | None = None
    ) -> int: ...

    def history(self, instance_id: str) -> list[dict[str, Any]]: ...

    def stored(self, instance_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        """The instance's row and history rows, checked as a replay needs them
        (``DamagedRecord`` names a damaged one)."""

    def outbox(
        self, *, status: Sequence[str] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Reader: ...

    def __exit__(self, *exc: object) -> None: ...


class StoreReader:
    """A :class:`Reader` over an opened :class:`~eddic.storage.Store` (it checks the schema
    and refuses a newer one when it opens)."""

    def __init__(self, db_url: str) -> None:
        self._store: Store = open_store(db_url)
        self._store.open()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def instance(self, instance_id: str) -> dict[str, Any]:
        return self._store.get_instance(instance_id)

    def listed_instance(self, instance_id: str) -> dict[str, Any]:
        return self._store.get_instance(instance_id)

    def list_instances(
        self,
        *,
        status: Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return self._store.list_instances(status=status, workflow=workflow, limit=limit)

    def count_instances(
        self, *, status: Sequence[str] | None = None, workflow: str | None = None
    ) -> int:
        return self._store.count_instances(status=status, workflow=workflow)

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        return self._store.history(instance_id)

    def stored(self, instance_id: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
        stored = self._store.stored(instance_id)
        check_replayable(stored.row, stored.history)
        return stored.row, stored.history

    def outbox(
        self, *, status: Sequence[str] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._store.outbox.rows(status, limit)


def replay(reader: Reader, instance_id: str, workflow: Workflow[Any] | None = None) -> Replay:
    """The instance's replay through the code registered in this process; a record of a shape
    eddic never writes is named (``DamagedRecord``), not left to fail inside the replay."""
    row, rows = reader.stored(instance_id)
    try:
        return Replay.from_rows(row, rows, workflow)
    except EddicError:  # unknown workflow, a value the current types refuse: not damage
        raise
    except Exception as exc:  # a record of a shape eddic never writes
        raise _culprit(instance_id, rows, exc) from None


def _culprit(instance_id: str, rows: list[tuple[Any, ...]], exc: Exception) -> EddicError:
    """The record whose decoding raised ``exc``: each is decoded alone (with the scheduled record
    of its seq, which says how to rebuild a result), so the first that fails is the one."""
    problem = f"{type(exc).__name__}: {exc}"
    scheduled: dict[Any, tuple[Any, ...]] = {}
    for row in rows:
        item = dict(zip(HISTORY_FIELDS, row, strict=True))
        context = [row] if item["record"] == "scheduled" else [scheduled.get(item["seq"]), row]
        if item["record"] == "scheduled":
            scheduled[item["seq"]] = row
        try:
            decode_records([r for r in context if r is not None])
        except Exception:
            column = "args" if item["record"] == "scheduled" else "value"
            if item["record"] == "resolved" and item["failure"] is not None:
                column = "failure"
            return DamagedRecord(
                instance_id, history_record(item["pos"], item["seq"]), column, problem
            )
    return EddicError(f"instance {instance_id!r} cannot be replayed: {problem}")
