"""The database schema, created and migrated explicitly, one function per version.

``eddic_meta`` marks the file as eddic's and holds ``schema_version``; ``Storage`` refuses files
without it (foreign) or with a newer version, before touching them.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

SCHEMA_VERSION = 1
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


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _create_v1}
