"""The outbox's rows on PostgreSQL: ``PostgresStorage.outbox``, the same methods as SQLite's
``OutboxRows``, each one unit of work.

A claim moves a due pending row's next attempt past the delivery's end in one conditional
``UPDATE`` (``attempts`` and ``next_attempt_at`` as the relay read them): of two relays racing
for a row, the second waits on the first's row lock and, at READ COMMITTED, re-checks the
condition against the committed row, which no longer matches, so exactly one gets it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...clock import to_text
from ...serde import loads
from .units import Units

_HEAD_ROWS = (
    "SELECT id, event_id, instance_id, event_type, source, data, time, attempts FROM outbox o "
    "WHERE status = 'pending' AND next_attempt_at <= %s AND o.id <= %s AND NOT EXISTS (SELECT 1 "
    "FROM outbox p WHERE p.instance_id = o.instance_id AND p.id < o.id "
    "AND p.status IN ('pending','failed')) ORDER BY id LIMIT %s"
)
_COLUMNS = (
    "id, event_id, instance_id, seq, event_type, source, data, time, status, attempts, "
    "next_attempt_at, last_error, sent_at"
)


class PostgresOutboxRows:
    def __init__(self, units: Units) -> None:
        self._units = units

    def due_heads(self, now: datetime, newest: int | None, limit: int) -> tuple[int, list[Any]]:
        """``(newest, heads)``: the due head rows up to row ``newest`` (the newest row now when
        None): ``(id, event_id, instance_id, event_type, source, data, time, attempts)``."""

        def work(cur: Any) -> tuple[int, list[Any]]:
            top = newest
            if top is None:
                cur.execute("SELECT coalesce(max(id), 0) FROM outbox")
                top = int(cur.fetchone()[0])
            cur.execute(_HEAD_ROWS, [now, top, limit])
            # ``time`` as the text SQLite's rows carry, so the relay reads both alike
            rows = [(*r[:6], to_text(r[6]), r[7]) for r in cur.fetchall()]
            return top, rows

        return self._units.run(work, write=False)

    def claim(self, row_id: int, attempts: int, until: datetime, now: datetime) -> bool:
        def work(cur: Any) -> bool:
            cur.execute(
                "UPDATE outbox SET next_attempt_at = %s WHERE id = %s AND status = 'pending' "
                "AND attempts = %s AND next_attempt_at <= %s",
                [until, row_id, attempts, now],
            )
            return bool(cur.rowcount == 1)

        return self._units.run(work)

    def sent(self, row_id: int, attempts: int, now: datetime) -> None:
        self._units.run(
            lambda cur: cur.execute(
                "UPDATE outbox SET status = 'sent', sent_at = %s, attempts = %s WHERE id = %s",
                [now, attempts, row_id],
            )
        )

    def failed_attempt(
        self, row_id: int, *, attempts: int, error: str, next_at: datetime, give_up: bool
    ) -> None:
        self._units.run(
            lambda cur: cur.execute(
                "UPDATE outbox SET status = %s, attempts = %s, last_error = %s, "
                "next_attempt_at = %s WHERE id = %s",
                ["failed" if give_up else "pending", attempts, error, next_at, row_id],
            ),
            # a retry later is work for some relay; a row given up is not
            notify=lambda _: not give_up,
        )

    def rows(
        self,
        statuses: Sequence[str] | None = None,
        limit: int = 100,
        instance_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Outbox rows as dicts (``data`` decoded, times as SQLite's texts), in delivery order;
        of one instance only with ``instance_id`` (read through ``outbox_by_instance``)."""
        where: list[str] = []
        params: list[Any] = []
        if statuses:
            where.append("status = ANY(%s)")
            params.append(list(statuses))
        if instance_id is not None:
            where.append("instance_id = %s")
            params.append(instance_id)
        sql = f"SELECT {_COLUMNS} FROM outbox"
        if where:
            sql += " WHERE " + " AND ".join(where)

        def work(cur: Any) -> list[dict[str, Any]]:
            cur.execute(sql + " ORDER BY id LIMIT %s", [*params, limit])
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

        rows = self._units.run(work, write=False)
        for row in rows:
            row["data"] = loads(row["data"])
            for name in ("time", "next_attempt_at", "sent_at"):
                row[name] = to_text(row[name])  # as SQLite's rows give them
        return rows

    def pending(self) -> bool:
        """Whether any row waits for delivery."""

        def work(cur: Any) -> bool:
            cur.execute("SELECT 1 FROM outbox WHERE status = 'pending' LIMIT 1")
            return cur.fetchone() is not None

        return self._units.run(work, write=False)

    def retry_failed(self, now: datetime, event_id: str | None = None) -> int:
        def work(cur: Any) -> int:
            sql = (
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = %s "
                "WHERE status = 'failed'"
            )
            params: list[Any] = [now]
            if event_id is not None:
                sql += " AND event_id = %s"
                params.append(event_id)
            cur.execute(sql, params)
            return int(cur.rowcount)

        return self._units.run(work, notify=bool)

    def discard(self, event_id: str | None = None) -> int:
        def work(cur: Any) -> int:
            sql = "UPDATE outbox SET status = 'discarded' WHERE status = 'failed'"
            params: list[Any] = []
            if event_id is not None:
                sql += " AND event_id = %s"
                params.append(event_id)
            cur.execute(sql, params)
            return int(cur.rowcount)

        return self._units.run(work, notify=bool)  # rows held behind it may now go
