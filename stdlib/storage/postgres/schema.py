"""The PostgreSQL schema, in a schema of its own, created and migrated explicitly.

Version numbers are this backend's own and start again at 1 (SQLite's v2 clustering of history
ids has no counterpart here: history is keyed ``(instance_id, pos)``, which PostgreSQL's b-tree
serves as well as any). ``eddic_meta`` marks the schema as eddic's and holds
``schema_version``; a schema from a newer eddic, or one holding tables but no ``eddic_meta``,
is refused before anything is written to it.

Times are ``timestamptz`` (compared as times, not texts); JSON values stay ``text`` as eddic
wrote them (``jsonb`` would reorder keys and change what replay reads back).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import StorageError

SCHEMA_VERSION = 6
_MARKER = "eddic"
_FINISHED = "('completed','failed','cancelled')"

_V1 = [
    "CREATE TABLE eddic_meta (key text PRIMARY KEY, value text NOT NULL)",
    f"INSERT INTO eddic_meta VALUES ('application', '{_MARKER}')",
    "CREATE TABLE instances ("
    " ikey bigint GENERATED ALWAYS AS IDENTITY UNIQUE,"
    " instance_id text PRIMARY KEY, workflow_name text NOT NULL, status text NOT NULL,"
    " input_data text, output_data text, error text,"
    " created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, started_at timestamptz,"
    " service_name text, lock_timeout_seconds double precision, lock_owner text,"
    " lock_epoch bigint NOT NULL DEFAULT 0, lock_expires_at timestamptz,"
    " wake_at timestamptz, retry_after timestamptz)",
    "CREATE INDEX instances_by_status ON instances (status)",
    "CREATE INDEX instances_by_workflow ON instances (workflow_name)",
    "CREATE INDEX instances_by_created ON instances (created_at DESC, ikey DESC)",
    # The polling queries (due, stale, next_wake, claim) read only these partial indexes, which
    # hold unfinished instances alone: an idle fleet's polls cost a few index pages.
    f"CREATE INDEX instances_due ON instances (wake_at) "
    f"WHERE wake_at IS NOT NULL AND status NOT IN {_FINISHED}",
    "CREATE INDEX instances_active ON instances (updated_at) "
    "WHERE status IN ('running','compensating')",
    "CREATE TABLE history (instance_id text NOT NULL, pos integer NOT NULL,"
    " seq integer NOT NULL, record text NOT NULL, kind text, name text, args text,"
    " at timestamptz NOT NULL, deadline timestamptz, value text, failure text,"
    " PRIMARY KEY (instance_id, pos))",
    "CREATE TABLE attempts (instance_id text NOT NULL, seq integer NOT NULL, started integer,"
    " failures integer, next_at timestamptz, last_failure text, PRIMARY KEY (instance_id, seq))",
    "CREATE TABLE event_waits (instance_id text NOT NULL, seq integer NOT NULL,"
    " event_type text NOT NULL, deadline timestamptz, PRIMARY KEY (instance_id, seq))",
    "CREATE INDEX event_waits_by_type ON event_waits (event_type)",
    "CREATE TABLE mailbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " instance_id text NOT NULL, event_id text NOT NULL, event_type text NOT NULL,"
    " source text, time timestamptz NOT NULL, data text, consumed_seq integer,"
    " UNIQUE (instance_id, event_id))",
    "CREATE INDEX mailbox_pending ON mailbox (instance_id, event_type) WHERE consumed_seq IS NULL",
    "CREATE TABLE outbox (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " event_id text NOT NULL UNIQUE, instance_id text NOT NULL, seq integer NOT NULL,"
    " event_type text NOT NULL, source text, data text, time timestamptz NOT NULL,"
    " status text NOT NULL, attempts integer NOT NULL DEFAULT 0,"
    " next_attempt_at timestamptz, last_error text, sent_at timestamptz)",
    # The relay's head query: each instance's undelivered rows, and the due pending ones.
    "CREATE INDEX outbox_open ON outbox (instance_id, id) WHERE status IN ('pending','failed')",
    "CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE status = 'pending'",
]


# v2: ``next_wake`` reads the earliest waiting instances in this order, a few index entries,
# instead of taking a minimum over every waiting instance (87 ms per poll with 100,000 timers,
# tests/benchmarks/pg_idle_fleet.py). The lease is left out of the key: lease changes (every
# claim and release) would then all rewrite the index instead of being HOT updates.
_V2 = [
    "CREATE INDEX instances_wake_order ON instances ((greatest(wake_at, retry_after))) "
    f"WHERE wake_at IS NOT NULL AND status NOT IN {_FINISHED}",
]


# v3: the workers that hold a liveness lock (``liveness``): a dead one's leases are released.
_V3 = ["CREATE TABLE workers (owner text PRIMARY KEY, since timestamptz NOT NULL DEFAULT now())"]


# v4: the JSON text of the last heartbeat details of the attempt in progress (``heartbeat``);
# a step's write of the attempt row keeps it. Adding a nullable column rewrites no row.
_V4 = ["ALTER TABLE attempts ADD COLUMN details text"]


# v5: cancel requests (``request_cancel``): the reason, kept, and the time of a request the
# instance has not seen yet, which the worker clears in the step that throws Cancelled in.
# Child workflows: the parent and the seq of its CallWorkflow, where the child's outcome goes.
_V5 = [
    "ALTER TABLE instances ADD COLUMN cancel_reason text",
    "ALTER TABLE instances ADD COLUMN cancel_requested_at timestamptz",
    "ALTER TABLE instances ADD COLUMN parent_id text",
    "ALTER TABLE instances ADD COLUMN parent_seq integer",
    "CREATE INDEX instances_by_parent ON instances (parent_id) WHERE parent_id IS NOT NULL",
    # continue-as-new: the run in progress and the pos of the last record before it began
    "ALTER TABLE instances ADD COLUMN run integer NOT NULL DEFAULT 1",
    "ALTER TABLE instances ADD COLUMN run_start_pos integer NOT NULL DEFAULT 0",
    # ctx.set_status: where the instance says it is (JSON), instance state, never history
    "ALTER TABLE instances ADD COLUMN custom_status text",
    # WaitEvent(match=): a broadcast reaches only the waits it matches
    "ALTER TABLE event_waits ADD COLUMN match text",
]


# v6: the viewer's reads (``list_instances`` pages and cursors, ``status_counts``, ``outbox.rows``
# of one instance), each read in index order instead of sorting every instance. The plain list
# and its ``(created_at, ikey) < (...)`` cursors have ``instances_by_created`` (v1); a page by
# status or by workflow gets ``(created_at, ikey)`` after its column. The old one-column indexes
# are replaced, keeping their names and first column, so what used them (``due_elsewhere``'s
# lookup by status) reads the new ones alike. ``created_at`` never changes: the wider keys cost
# a step nothing the old ones did not (a status change was never a HOT update: status is
# indexed). ``outbox_by_instance``: one instance's rows in delivery order, whatever their status
# (``outbox_open`` holds the undelivered ones only). The builds take the tables' write lock for
# as long as they take, once, when the schema is migrated.
_V6 = [
    "DROP INDEX instances_by_status",
    "CREATE INDEX instances_by_status ON instances (status, created_at, ikey)",
    "DROP INDEX instances_by_workflow",
    "CREATE INDEX instances_by_workflow ON instances (workflow_name, created_at, ikey)",
    "CREATE INDEX outbox_by_instance ON outbox (instance_id, id)",
]


def _run(statements: list[str]) -> Callable[[Any], None]:
    def migration(cur: Any) -> None:
        for statement in statements:
            cur.execute(statement)

    return migration


MIGRATIONS: dict[int, Callable[[Any], None]] = {
    1: _run(_V1),
    2: _run(_V2),
    3: _run(_V3),
    4: _run(_V4),
    5: _run(_V5),
    6: _run(_V6),
}


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def stored_version(cur: Any, schema: str, where: str) -> int:
    """The schema's version: 0 when it is missing or empty; ``StorageError`` when it is not
    eddic's, is damaged, or is newer than this eddic."""
    cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [schema])
    tables = cur.fetchone()[0]
    if tables == 0:
        return 0
    cur.execute("SELECT to_regclass(%s)", [f"{quote_ident(schema)}.eddic_meta"])
    if cur.fetchone()[0] is None:
        raise StorageError(
            f"schema {schema!r} of {where} holds tables that are not eddic's; "
            "name another one with ?schema="
        )
    cur.execute(
        f"SELECT key, value FROM {quote_ident(schema)}.eddic_meta "
        "WHERE key IN ('application', 'schema_version')"
    )
    meta = dict(cur.fetchall())
    if meta.get("application") != _MARKER:
        raise StorageError(f"schema {schema!r} of {where} is not an eddic schema")
    try:
        version = int(meta.get("schema_version", "0"))
    except ValueError:
        raise StorageError(f"schema {schema!r} of {where} has a damaged schema_version") from None
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"schema {schema!r} of {where} is at version {version}, newer than this eddic's "
            f"PostgreSQL schema ({SCHEMA_VERSION}): upgrade eddic; nothing was changed"
        )
    return version


def migrate(cur: Any, schema: str, where: str) -> None:
    """Create or migrate the schema inside the caller's transaction. A transaction-scoped
    advisory lock makes processes opening one schema at once migrate it one after another."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"eddic schema {schema}"])
    version = stored_version(cur, schema, where)  # checked under the lock: what is there now
    if version == SCHEMA_VERSION:
        return
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[target](cur)
        cur.execute(
            "INSERT INTO eddic_meta VALUES ('schema_version', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [str(target)],
        )
