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
from ...errors import DamagedRecord, InstanceNotFound
from ...serde import loads

__all__ = [
    "HISTORY_FIELDS",
    "MAILBOX_FIELDS",
    "DamagedRecord",
    "check_replayable",
    "count_instances",
    "decoded_history",
    "history_record",
    "json_column",
    "mailbox_row",
    "public_instance",
    "select_instance_rows",
    "select_instances",
    "status_counts",
    "workflow_names",
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


def _instance_filter(
    statuses: str | Sequence[str] | None,
    workflow: str | None,
    search: str | None = None,
    parent: str | None = None,
) -> tuple[list[str], list[Any]]:
    """The WHERE terms of a list or count and their parameters. ``search`` is a substring of
    the id, every character literal (``instr``, not ``LIKE``: ``%``, ``_`` and ``\\`` are
    themselves), case-sensitive as ``instr`` is on text."""
    where: list[str] = []
    params: list[Any] = []
    if isinstance(statuses, str):
        statuses = [statuses]
    if statuses:
        if len(statuses) == 1:  # an equality: a page by one status is read in index order
            where.append("status = ?")
        else:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
        params.extend(statuses)
    if workflow is not None:
        where.append("workflow_name = ?")
        params.append(workflow)
    if search:
        where.append("instr(instance_id, ?) > 0")
        params.append(search)
    if parent is not None:
        where.append("parent_id = ?")
        params.append(parent)
    return where, params


def _where(terms: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(terms) if terms else ""


def select_instance_rows(
    db: sqlite_utils.Database,
    *,
    statuses: str | Sequence[str] | None = None,
    workflow: str | None = None,
    limit: int | None = None,
    search: str | None = None,
    parent: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """Stored instance rows, undecoded, newest first, filtered by status, workflow name, a
    substring of the id (``search``) and parent.

    Newest first so that a cut list (``limit``) holds the instances just started; among those
    created at the same time, the later insert comes first (``ikey``), so the order is stable.
    ``before`` / ``after`` name an instance whose place in that order is a cursor: only the
    instances after it (older) / before it (newer; the ``limit`` nearest to it, still newest
    first). The cursor need not pass the filters. ``InstanceNotFound`` for an unknown one,
    ``ValueError`` for both. Every such page is read in the order of an index
    (``instances_by_created``, ``_by_status`` or ``_by_workflow``) from the cursor on.
    """
    if before is not None and after is not None:
        raise ValueError("give before or after, not both")
    where, params = _instance_filter(statuses, workflow, search, parent)
    order = "DESC"
    cursor = before if before is not None else after
    if cursor is not None:
        found = db.execute(
            "SELECT created_at, ikey FROM instances WHERE instance_id = ?", [cursor]
        ).fetchone()
        if found is None:
            raise InstanceNotFound(f"no workflow instance with id {cursor!r}")
        where.append(f"(created_at, ikey) {'<' if before is not None else '>'} (?, ?)")
        params.extend(found)
        if after is not None:
            order = "ASC"  # the nearest ones first, then turned round
    sql = f"SELECT * FROM instances{_where(where)} ORDER BY created_at {order}, ikey {order}"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = list(db.query(sql, params))
    if after is not None:
        rows.reverse()
    return rows


def select_instances(
    db: sqlite_utils.Database,
    *,
    statuses: str | Sequence[str] | None = None,
    workflow: str | None = None,
    limit: int | None = None,
    search: str | None = None,
    parent: str | None = None,
    before: str | None = None,
    after: str | None = None,
) -> list[dict[str, Any]]:
    """Instances as public dicts, newest first (``created_at``, then insert order, descending),
    filtered and paged as ``select_instance_rows`` does; ``DamagedRecord`` for a row that cannot
    be read."""
    rows = select_instance_rows(
        db,
        statuses=statuses,
        workflow=workflow,
        limit=limit,
        search=search,
        parent=parent,
        before=before,
        after=after,
    )
    return [public_instance(r) for r in rows]


def count_instances(
    db: sqlite_utils.Database,
    *,
    statuses: str | Sequence[str] | None = None,
    workflow: str | None = None,
    search: str | None = None,
    parent: str | None = None,
) -> int:
    """How many instances ``select_instances`` would return without a limit or cursor."""
    where, params = _instance_filter(statuses, workflow, search, parent)
    row = db.execute(f"SELECT COUNT(*) FROM instances{_where(where)}", params).fetchone()
    return int(row[0])


def status_counts(
    db: sqlite_utils.Database, *, workflow: str | None = None, search: str | None = None
) -> dict[str, int]:
    """How many instances there are of each status present (filtered as ``count_instances``).
    Unfiltered, one pass over ``instances_by_status`` alone; by workflow, over that workflow's
    entries in ``instances_by_workflow``. A search first finds the matching keys in the id's own
    index (which holds nothing else, so it is the quickest to read whole), then reads only
    their rows: scanning ``instances_by_status`` in order would read every row for its id."""
    where, params = _instance_filter(None, workflow)
    if search:
        where.append("ikey IN (SELECT ikey FROM instances WHERE instr(instance_id, ?) > 0)")
        params.append(search)
    rows = db.execute(
        f"SELECT status, COUNT(*) FROM instances{_where(where)} GROUP BY status", params
    ).fetchall()
    return {str(status): int(n) for status, n in rows}


def workflow_names(db: sqlite_utils.Database) -> list[str]:
    """The distinct workflow names, sorted: one seek in ``instances_by_workflow`` per name
    (each the least name above the last), however many instances each has."""
    rows = db.execute(
        "WITH RECURSIVE names(name) AS (SELECT MIN(workflow_name) FROM instances "
        "UNION ALL SELECT (SELECT MIN(workflow_name) FROM instances WHERE workflow_name > name) "
        "FROM names WHERE name IS NOT NULL) SELECT name FROM names WHERE name IS NOT NULL"
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


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


#: The columns of a mailbox row, in the order ``mailbox_row`` reads them.
MAILBOX_FIELDS = (
    "id",
    "instance_id",
    "event_type",
    "event_id",
    "source",
    "data",
    "time",
    "consumed_seq",
)


def mailbox_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A mailbox row (``time`` as eddic's ISO text) as the viewer shows it: ``id``,
    ``event_type``, ``event_id``, ``source``, ``data`` (decoded), ``time`` (aware) and
    ``consumed_seq`` (the seq of the step that took it; None while it waits)."""
    c = _Columns(row, row.get("instance_id"), f"mailbox row {row.get('id')!r}")
    return {
        "id": c.integer("id"),
        "event_type": c.text("event_type"),
        "event_id": c.raw("event_id"),
        "source": c.raw("source"),
        "data": c.json("data"),
        "time": c.time("time", required=True),
        "consumed_seq": c.raw("consumed_seq"),
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
