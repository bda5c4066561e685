"""Instance and history rows as the public dicts that ``App`` and the read-only view return.

Values come out as JSON-compatible data and aware UTC datetimes; both ``Storage`` and
``dbview.ReadOnlyDatabase`` build their answers here, so the two never disagree.

A stored value that cannot be read back as eddic wrote it (a file edited by hand, a bad copy)
raises :class:`DamagedRecord`, which names the instance, the record and the column, instead of
a bare ``JSONDecodeError`` that says where in which text but not in which record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlite_utils

from ...clock import from_text
from ...errors import DamagedRecord
from ...serde import loads

__all__ = [
    "HISTORY_FIELDS",
    "DamagedRecord",
    "check_replayable",
    "count_instances",
    "decoded_history",
    "history_record",
    "json_column",
    "public_instance",
    "select_instance_rows",
    "select_instances",
]

#: The fields of a history row, in the order ``Storage.history_rows`` returns them.
HISTORY_FIELDS = (
    "instance_id",
    "pos",
    "seq",
    "record",
    "kind",
    "name",
    "args",
    "at",
    "deadline",
    "value",
    "failure",
)


class _Columns:
    """The columns of one stored record, each read back with a check of what eddic writes."""

    def __init__(self, row: Mapping[str, Any], instance_id: Any, record: str) -> None:
        self.row, self.instance_id, self.record = row, instance_id, record

    def damaged(self, column: str, problem: str) -> DamagedRecord:
        return DamagedRecord(self.instance_id, self.record, column, problem)

    def raw(self, column: str) -> Any:
        if column not in self.row:  # a column dropped by hand
            raise self.damaged(column, "the column is missing")
        return self.row[column]

    def text(self, column: str) -> str:
        """A column eddic always fills with text."""
        value = self.raw(column)
        if not isinstance(value, str) or not value:
            raise self.damaged(column, f"holds {_held(value)}, not a name")
        return value

    def integer(self, column: str) -> int:
        value = self.raw(column)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.damaged(column, f"holds {_held(value)}, not an integer")
        return value

    def json(self, column: str) -> Any:
        value = self.raw(column)
        if value is not None and not isinstance(value, str):
            raise self.damaged(column, f"holds {_held(value)}, not JSON text")
        try:
            return loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past the stack
            raise self.damaged(column, f"not valid JSON ({exc})") from None

    def json_object(self, column: str, *, keys: Sequence[str] = ()) -> dict[str, Any] | None:
        """A column holding a JSON object (with ``keys``) or NULL."""
        value = self.json(column)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.damaged(column, f"holds JSON {_held(value)}, not an object")
        missing = [key for key in keys if key not in value]
        if missing:
            raise self.damaged(column, f"the JSON object has no {', '.join(map(repr, missing))}")
        return value

    def time(self, column: str, *, required: bool = False) -> datetime | None:
        value = self.raw(column)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise self.damaged(column, f"holds {_held(value)}, not a time")
        try:
            when = from_text(value)
        except ValueError:
            raise self.damaged(column, f"holds {value!r}, not an ISO time") from None
        if when is None or when.tzinfo is None:  # eddic writes UTC offsets; naive would shift
            raise self.damaged(column, f"holds {value!r}, a time without a UTC offset")
        return when


def _held(value: Any) -> str:
    """What a column holds, briefly: ``NULL``, ``an integer 42``, ``a string 'x'``, ..."""
    if value is None:
        return "NULL"
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


# -- instances ----------------------------------------------------------------------------------


def _instance_filter(statuses: Sequence[str] | None, workflow: str | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if workflow is not None:
        where.append("workflow_name = ?")
        params.append(workflow)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def select_instance_rows(
    db: sqlite_utils.Database,
    *,
    statuses: Sequence[str] | None = None,
    workflow: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Stored instance rows, undecoded, newest first, filtered by status and workflow name.

    Newest first so that a cut list (``limit``) holds the instances just started; among those
    created at the same time, the later insert comes first (``ikey``), so the order is stable.
    """
    where, params = _instance_filter(statuses, workflow)
    sql = f"SELECT * FROM instances{where} ORDER BY created_at DESC, ikey DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return list(db.query(sql, params))


def select_instances(
    db: sqlite_utils.Database,
    *,
    statuses: Sequence[str] | None = None,
    workflow: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Instances as public dicts, newest first (``created_at``, then insert order, descending),
    filtered by status and workflow name; ``DamagedRecord`` for a row that cannot be read."""
    rows = select_instance_rows(db, statuses=statuses, workflow=workflow, limit=limit)
    return [public_instance(r) for r in rows]


def count_instances(
    db: sqlite_utils.Database,
    *,
    statuses: Sequence[str] | None = None,
    workflow: str | None = None,
) -> int:
    """How many instances ``select_instances`` would return without a limit."""
    where, params = _instance_filter(statuses, workflow)
    row = db.execute(f"SELECT COUNT(*) FROM instances{where}", params).fetchone()
    return int(row[0])


def public_instance(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public dict of a stored instance row; ``DamagedRecord`` names a column it cannot read."""
    c = _Columns(row, row.get("instance_id"), "instances row")
    return {
        "instance_id": c.text("instance_id"),
        "workflow_name": c.text("workflow_name"),
        "status": c.text("status"),
        "input_data": c.json("input_data"),
        "output_data": c.json("output_data"),
        "error": c.json_object("error"),
        "created_at": c.time("created_at", required=True),
        "updated_at": c.time("updated_at", required=True),
        "wake_at": c.time("wake_at"),
        "retry_after": c.time("retry_after"),  # a parked instance is retried from then
        "lock_owner": c.raw("lock_owner"),
        "lock_expires_at": c.time("lock_expires_at"),
        "lock_timeout_seconds": c.raw("lock_timeout_seconds"),
        "service_name": c.raw("service_name"),
        # the reason given to App.cancel, once it was asked (kept after the cancel is seen)
        "cancel_reason": c.json("cancel_reason"),
        "cancel_requested": row.get("cancel_reason") is not None,
        "parent_id": c.raw("parent_id"),  # a child workflow's parent
        "run": row.get("run", 1),  # continue-as-new: the run in progress, from 1
        "custom_status": c.json("custom_status"),  # ctx.set_status's last value
    }


def json_column(value: Any, instance_id: Any, record: str, column: str) -> Any:
    """One stored JSON value, decoded; ``DamagedRecord`` naming ``record`` when it is not JSON."""
    return _Columns({column: value}, instance_id, record).json(column)


def check_replayable(row: Mapping[str, Any], history: Sequence[tuple[Any, ...]]) -> None:
    """Check an instance row and its history rows as far as replay reads them (``started_at``
    too, where it starts), so that a damaged one is named before replay trips on it."""
    public_instance(row)
    _Columns(row, row.get("instance_id"), "instances row").time("started_at")
    decoded_history(history)


# -- histories ----------------------------------------------------------------------------------


def runs_of(rows: Sequence[tuple[Any, ...]], run: int) -> list[tuple[Any, ...]]:
    """Of an instance's history rows over all its runs, those of run ``run`` (from 1): each
    run ends with the ``continue`` record its ``ContinueAsNew`` wrote."""
    current = 1
    out: list[tuple[Any, ...]] = []
    for row in rows:
        if current == run:
            out.append(row)
        if row[3] == "scheduled" and row[4] == "continue":
            current += 1
            if current > run:
                break
    return out


def history_record(pos: Any, seq: Any) -> str:
    """How a history record is named in errors: ``history pos 3 (seq 2)``."""
    return f"history pos {pos!r} (seq {seq!r})"


def decoded_history(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """History rows as dicts of JSON values and aware datetimes (for display).

    ``DamagedRecord`` names the first record that does not hold what eddic writes.
    """
    return [_decoded_record(dict(zip(HISTORY_FIELDS, row, strict=True))) for row in rows]


def _decoded_record(item: dict[str, Any]) -> dict[str, Any]:
    c = _Columns(item, item["instance_id"], history_record(item["pos"], item["seq"]))
    c.integer("pos")
    c.integer("seq")
    if item["record"] not in ("scheduled", "resolved", "cancel"):
        raise c.damaged(
            "record", f"holds {_held(item['record'])}, not scheduled, resolved or cancel"
        )
    if item["record"] == "scheduled":
        c.text("kind")  # the timeline and replay match commands by kind and name
        c.text("name")
    item["args"] = c.json("args")
    item["value"] = c.json("value")
    item["failure"] = c.json_object("failure", keys=("type", "message"))
    item["at"] = c.time("at", required=True)
    item["deadline"] = c.time("deadline")
    return item
