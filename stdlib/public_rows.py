"""Instance and history rows as the public dicts that ``App`` and the read-only view return.

Values come out as JSON-compatible data and aware UTC datetimes; both ``Storage`` and
``dbview.ReadOnlyDatabase`` build their answers here, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlite_utils

from .clock import from_text
from .serde import loads

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


def select_instances(
    db: sqlite_utils.Database,
    *,
    statuses: Sequence[str] | None = None,
    workflow: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Instances as public dicts, oldest first, filtered by status and workflow name."""
    where: list[str] = []
    params: list[Any] = []
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if workflow is not None:
        where.append("workflow_name = ?")
        params.append(workflow)
    sql = "SELECT * FROM instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, instance_id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [public_instance(r) for r in db.query(sql, params)]


def decoded_history(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """History rows as dicts of JSON values and aware datetimes (for display)."""
    out = []
    for row in rows:
        item = dict(zip(HISTORY_FIELDS, row, strict=True))
        for key in ("args", "value", "failure"):
            item[key] = loads(item[key])
        for key in ("at", "deadline"):
            item[key] = from_text(item[key])
        out.append(item)
    return out


def public_instance(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "instance_id": row["instance_id"],
        "workflow_name": row["workflow_name"],
        "status": row["status"],
        "input_data": loads(row["input_data"]),
        "output_data": loads(row["output_data"]),
        "error": loads(row["error"]),
        "created_at": from_text(row["created_at"]),
        "updated_at": from_text(row["updated_at"]),
        "wake_at": from_text(row["wake_at"]),
        "retry_after": from_text(row["retry_after"]),  # a parked instance is retried from then
        "lock_owner": row["lock_owner"],
        "lock_expires_at": from_text(row["lock_expires_at"]),
        "lock_timeout_seconds": row["lock_timeout_seconds"],
        "service_name": row["service_name"],
    }
