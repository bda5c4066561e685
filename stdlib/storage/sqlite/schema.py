"""The database schema, created and migrated explicitly, one function per version.

``eddic_meta`` marks the file as eddic's and holds ``schema_version``; ``Storage`` refuses files
without it (foreign) or with a newer version, before touching them.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

SCHEMA_VERSION = 5

#: History rows have ``id = instance key << POS_BITS | pos``: one instance's records are contiguous
#: and a new instance's are appended at the end of the table (see ``_v2_cluster_history``).
POS_BITS = 24
MAX_POS = (1 << POS_BITS) - 1
_MARKER = "eddic"


def _create_v1(db: sqlite_utils.Database) -> None:
    db.table("eddic_meta").create({"key": str, "value": str}, pk="key", not_null={"value"})
    db.table("eddic_meta").insert({"key": "application", "value": _MARKER})
    db.table("instances").create(
        {
            "instance_id": str,
            "workflow_name": str,
            "status": str,
            "input_data": str,
            "output_data": str,
            "error": str,
            "created_at": str,
            "updated_at": str,
            "started_at": str,
            "service_name": str,
            "lock_timeout_seconds": float,
            "lock_owner": str,
            "lock_epoch": int,
            "lock_expires_at": str,
            "wake_at": str,
            "retry_after": str,
            "last_pos": int,
        },
        pk="instance_id",
        not_null={"workflow_name", "status", "created_at", "updated_at", "lock_epoch"},
        defaults={"lock_epoch": 0, "last_pos": 0},
    )
    db.table("instances").create_index(["status"], index_name="instances_by_status")
    db.execute("CREATE INDEX instances_by_wake_at ON instances (wake_at) WHERE wake_at IS NOT NULL")
    db.table("instances").create_index(["workflow_name"], index_name="instances_by_workflow")
    db.execute(
        "CREATE TABLE history (instance_id TEXT NOT NULL, pos INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, record TEXT NOT NULL, kind TEXT, name TEXT, args TEXT, "
        "at TEXT NOT NULL, deadline TEXT, value TEXT, failure TEXT, "
        "PRIMARY KEY (instance_id, pos)) WITHOUT ROWID"
    )
    db.table("attempts").create(
        {
            "instance_id": str,
            "seq": int,
            "started": int,
            "failures": int,
            "next_at": str,
            "last_failure": str,
        },
        pk=("instance_id", "seq"),
    )
    db.table("event_waits").create(
        {"instance_id": str, "seq": int, "event_type": str, "deadline": str},
        pk=("instance_id", "seq"),
    )
    db.table("event_waits").create_index(["event_type"], index_name="event_waits_by_type")
    db.table("mailbox").create(
        {
            "id": int,
            "instance_id": str,
            "event_id": str,
            "event_type": str,
            "source": str,
            "time": str,
            "data": str,
            "consumed_seq": int,
        },
        pk="id",
    )
    db.table("mailbox").create_index(
        ["instance_id", "event_id"], unique=True, index_name="mailbox_once"
    )
    db.table("mailbox").create_index(
        ["instance_id", "event_type", "consumed_seq"], index_name="mailbox_pending"
    )
    db.table("outbox").create(
        {
            "id": int,
            "event_id": str,
            "instance_id": str,
            "seq": int,
            "event_type": str,
            "source": str,
            "data": str,
            "time": str,
            "status": str,
            "attempts": int,
            "next_attempt_at": str,
            "last_error": str,
            "sent_at": str,
        },
        pk="id",
    )
    db.table("outbox").create_index(["event_id"], unique=True, index_name="outbox_event_id")
    db.table("outbox").create_index(["status", "next_attempt_at"], index_name="outbox_pending")


def _v2_cluster_history(db: sqlite_utils.Database) -> None:
    """Give each instance a stable integer key and cluster history by (key, pos) in a rowid table.

    v1 keyed history by ``(instance_id, pos)`` in a WITHOUT ROWID table. Instance ids are random,
    so every step inserted into a random leaf of an index b-tree: about two pages per commit in
    the WAL, and a split balanced across siblings. An integer rowid whose high bits are the
    instance key keeps each instance's records together, as before, and appends a new instance's
    at the right edge, where SQLite splits a full page cheaply: about one page per commit.
    ``ikey`` is an ``INTEGER PRIMARY KEY`` so that it never changes (a plain rowid may, on VACUUM).

    ``last_pos`` goes: the history's last id gives it, so a step that changes nothing else on
    the instance need not rewrite the instance's page (one WAL frame less per commit).
    """
    db.execute("ALTER TABLE instances RENAME TO instances_v1")
    db.execute(
        "CREATE TABLE instances (ikey INTEGER PRIMARY KEY, instance_id TEXT NOT NULL UNIQUE, "
        "workflow_name TEXT NOT NULL, status TEXT NOT NULL, input_data TEXT, output_data TEXT, "
        "error TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, started_at TEXT, "
        "service_name TEXT, lock_timeout_seconds FLOAT, lock_owner TEXT, "
        "lock_epoch INTEGER NOT NULL DEFAULT 0, lock_expires_at TEXT, wake_at TEXT, "
        "retry_after TEXT)"
    )
    columns = (
        "instance_id, workflow_name, status, input_data, output_data, error, created_at, "
        "updated_at, started_at, service_name, lock_timeout_seconds, lock_owner, lock_epoch, "
        "lock_expires_at, wake_at, retry_after"
    )
    db.execute(
        f"INSERT INTO instances (ikey, {columns}) "
        f"SELECT rowid, {columns} FROM instances_v1 ORDER BY rowid"
    )
    db.execute("DROP TABLE instances_v1")  # drops its indexes too
    db.execute("CREATE INDEX instances_by_status ON instances (status)")
    db.execute("CREATE INDEX instances_by_wake_at ON instances (wake_at) WHERE wake_at IS NOT NULL")
    db.execute("CREATE INDEX instances_by_workflow ON instances (workflow_name)")

    db.execute("ALTER TABLE history RENAME TO history_v1")
    db.execute(
        "CREATE TABLE history (id INTEGER PRIMARY KEY, instance_id TEXT NOT NULL, "
        "pos INTEGER NOT NULL, seq INTEGER NOT NULL, record TEXT NOT NULL, kind TEXT, name TEXT, "
        "args TEXT, at TEXT NOT NULL, deadline TEXT, value TEXT, failure TEXT)"
    )
    db.execute(
        f"INSERT INTO history SELECT (i.ikey << {POS_BITS}) | h.pos, h.* FROM history_v1 h "
        "JOIN instances i ON i.instance_id = h.instance_id ORDER BY i.ikey, h.pos"
    )
    db.execute("DROP TABLE history_v1")


def _v3_heartbeat_details(db: sqlite_utils.Database) -> None:
    """``attempts.details``: the JSON text of the last heartbeat details of the attempt in
    progress (``Storage.heartbeat``), NULL until the activity heartbeats with details. A step's
    write of the attempt row keeps it, so the next attempt can read where the last one stopped.
    Existing rows keep their values and have no details."""
    db.execute("ALTER TABLE attempts ADD COLUMN details TEXT")


def _v4_lifecycle(db: sqlite_utils.Database) -> None:
    """Cancellation and child workflows.

    ``instances.cancel_reason`` and ``cancel_requested_at``: ``App.cancel`` records the request
    there (durable before it returns); the worker that next runs the instance throws
    ``Cancelled`` in and clears ``cancel_requested_at`` in the same step, keeping the reason.
    Existing rows have neither."""
    db.execute("ALTER TABLE instances ADD COLUMN cancel_reason TEXT")
    db.execute("ALTER TABLE instances ADD COLUMN cancel_requested_at TEXT")
    # child workflows: the parent and the seq of its CallWorkflow (its outcome goes there)
    db.execute("ALTER TABLE instances ADD COLUMN parent_id TEXT")
    db.execute("ALTER TABLE instances ADD COLUMN parent_seq INTEGER")
    db.execute(
        "CREATE INDEX instances_by_parent ON instances (parent_id) WHERE parent_id IS NOT NULL"
    )
    # continue-as-new: the run in progress (from 1) and the pos of the last record before it
    # began (history positions go on across runs; a replay reads the current run's alone)
    db.execute("ALTER TABLE instances ADD COLUMN run INTEGER NOT NULL DEFAULT 1")
    db.execute("ALTER TABLE instances ADD COLUMN run_start_pos INTEGER NOT NULL DEFAULT 0")
    # ctx.set_status: where the instance says it is (JSON), instance state, never history
    db.execute("ALTER TABLE instances ADD COLUMN custom_status TEXT")
    # WaitEvent(match=): a broadcast reaches only the waits it matches
    db.execute("ALTER TABLE event_waits ADD COLUMN match TEXT")


def _v5_viewer_indexes(db: sqlite_utils.Database) -> None:
    """Indexes for the viewer's reads (``list_instances``' pages and cursors, ``status_counts``,
    ``workflow_names``, ``outbox.rows(instance_id=)``), so that a page of 100,000 instances is a
    few index entries read in order, not a sort of them all.

    The list order is ``created_at DESC, ikey DESC``: ``instances_by_created`` serves the plain
    list and its ``(created_at, ikey) < (?, ?)`` cursors, and holds the id too, so a search
    (``instr(instance_id, ?)``) tests each entry before it reads the row (SQLite defers the
    row's seek until a column the index lacks is needed): a search that finds little reads the
    index, not the table (about 24 ms instead of 57 with 100,000 instances,
    tests/benchmarks/viewer_queries.py). ``instances_by_status`` and
    ``instances_by_workflow`` gain ``(created_at, ikey)`` after their column, so a filtered page
    is read in order too. They keep their names and their first column, so the stale query
    reads ``instances_by_status`` as before (the claim's due query and ``next_wake`` no longer
    use ``instances_by_workflow``: they read the due index, ``+workflow_name`` keeping SQLite
    off the workflow index, which holds every finished instance too). ``created_at`` never
    changes, so the wider keys cost no more on a step than the old ones did (a status change
    rewrites its entry in ``instances_by_status`` either way); only an insert writes one more
    index entry.
    ``outbox_by_instance``: an instance's outbox rows, in delivery order (the outbox had no
    index on the instance). Existing rows are indexed as they are; no row changes."""
    db.execute("CREATE INDEX instances_by_created ON instances (created_at, ikey, instance_id)")
    db.execute("DROP INDEX instances_by_status")
    db.execute("CREATE INDEX instances_by_status ON instances (status, created_at, ikey)")
    db.execute("DROP INDEX instances_by_workflow")
    db.execute("CREATE INDEX instances_by_workflow ON instances (workflow_name, created_at, ikey)")
    db.execute("CREATE INDEX outbox_by_instance ON outbox (instance_id, id)")


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {
    1: _create_v1,
    2: _v2_cluster_history,
    3: _v3_heartbeat_details,
    4: _v4_lifecycle,
    5: _v5_viewer_indexes,
}
