"""What the read-only commands ask of a database, answered through the storage interface:
the reader for backends other than an SQLite file (PostgreSQL), which has no file to open
read-only. It offers what ``storage.sqlite.dbview.ReadOnlyDatabase`` offers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..debug.replay import Replay
from ..decorators import Workflow
from ..storage import Store, open_store


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

    def replay(self, instance_id: str, workflow: Workflow[Any] | None = None) -> Replay: ...

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

    def replay(self, instance_id: str, workflow: Workflow[Any] | None = None) -> Replay:
        stored = self._store.stored(instance_id)
        return Replay.from_rows(stored.row, stored.history, workflow)

    def outbox(
        self, *, status: Sequence[str] | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._store.outbox.rows(status, limit)
