"""What an idle fleet costs PostgreSQL: 16 serving workers with nothing to do, measured.

One embedded server (tests/pg_server.py, with ``pg_stat_statements`` preloaded), one database
holding ``--finished`` finished instances, ``--waiting`` instances waiting (half on a timer 30
days away, half on an event nobody sends) and ``--sent`` delivered outbox rows, so that the
polling queries have rows to skip. Then, over ``--seconds`` each:

1. the server alone (``baseline``): its background processes' CPU;
2. ``--workers`` processes of ``eddic serve --db URL --import pg_idle_fleet`` (``--outbox``:
   ``--app pg_idle_fleet:outbox_app``, an App relaying its outbox), after ``--settle`` s.

Printed per window: the server's CPU (utime + stime of the postmaster, every child of it and the
children it reaped, from /proc: this server's processes only, whatever else runs on the box),
the part of it in the workers' own backends, the workers' CPU, the database's transactions,
rows and WAL per second, and per statement (``pg_stat_statements``) calls/s, mean time and rows.
Then the workers stop, the finished instances are topped up to ``--explain-finished``, and each
polling query of the store (due, stale, next_wake, claim, acquire) and of the outbox relay
(due heads, pending, claim) is captured as eddic sends it (its SQL and parameters, by running the
store's methods on a recording cursor) and shown under ``EXPLAIN (ANALYZE, BUFFERS)``, with a
custom and with a generic plan (what a backend uses once psycopg has prepared the statement):
a ``Seq Scan`` on a big table is flagged. Run by hand, prints figures, asserts nothing::

    python tests/benchmarks/pg_idle_fleet.py [--workers 16] [--seconds 60] [--settle 15]
        [--baseline 30] [--finished 10000] [--waiting 1000] [--sent 10000]
        [--explain-finished 100000] [--poll S] [--outbox] [--no-explain]

CPU time is the kernel's accounting of these processes, so other work on the machine does not
add to it, but it does slow it (a shared core, a cold cache): read the figures as an upper bound
and compare the windows of one run. ``pg_stat_database`` counts reach the view when a backend
has been idle for a while (at most every ~10 s), so transaction rates are exact to a few
transactions at the window's edges; ``pg_stat_statements`` counts are immediate.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

import pg_server

from eddic import App, Sleep, WaitEvent, activity, workflow

HERE = Path(__file__).resolve().parent
MODULE = Path(__file__).stem
TICK = os.sysconf("SC_CLK_TCK")
SCHEMA = "eddic"
NEVER = "idle_fleet.never"


# -- the workflows the database holds (the workers import this module to register them) --------


@activity
def idle_fleet_noop() -> int:
    return 1


@workflow
def idle_fleet_done(ctx: Any) -> Any:
    yield idle_fleet_noop()
    return 1


@workflow
def idle_fleet_timer(ctx: Any) -> Any:
    yield Sleep(seconds=30 * 86400)
    return 1


@workflow
def idle_fleet_event(ctx: Any) -> Any:
    yield WaitEvent(NEVER)
    return 1


def _drop(event: Any) -> None:
    """The outbox sink of ``--outbox`` workers (an idle fleet sends nothing)."""


def outbox_app() -> App:
    """``--app`` for ``--outbox`` workers: an App on ``$EDDIC_IDLE_DB`` relaying its outbox."""
    return App(db_url=os.environ["EDDIC_IDLE_DB"], outbox_enabled=True, outbox_sink=_drop)


# -- filling the database --------------------------------------------------------------------


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s AND is_identity = 'NO' ORDER BY ordinal_position",
        [SCHEMA, table],
    ).fetchall()
    return [r[0] for r in rows]


def clone(conn: psycopg.Connection[Any], template: str, first: int, count: int) -> None:
    """``count`` copies of instance ``template`` (its row, history, attempts and event waits),
    ids ``template-<first>`` onwards: rows shaped exactly as eddic wrote them."""
    if count <= 0:
        return
    for table in ("instances", "history", "attempts", "event_waits"):
        cols = _columns(conn, table)
        unique = {"instance_id", "event_id"}
        select = ", ".join(f"{c} || '-' || g" if c in unique else c for c in cols)
        conn.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table}, "
            "generate_series(%s::int, %s::int) g WHERE instance_id = %s",
            [first, first + count - 1, template],
        )


def clone_sent(conn: psycopg.Connection[Any], first: int, count: int, finished: int) -> None:
    """``count`` copies of the delivered outbox row ``sent``, their instance ids spread over
    ``done-1`` .. ``done-<finished - 1>`` (the relay's head query groups rows by instance)."""
    if count <= 0:
        return
    cols = _columns(conn, "outbox")
    select = ", ".join(
        f"{c} || '-' || g"
        if c == "event_id"
        else f"{c} || '-' || (g %% {max(1, finished - 1)} + 1)"
        if c == "instance_id"
        else c
        for c in cols
    )
    conn.execute(
        f"INSERT INTO outbox ({', '.join(cols)}) SELECT {select} FROM outbox, "
        "generate_series(%s::int, %s::int) g WHERE event_id = 'sent'",
        [first, first + count - 1],
    )


def populate(url: str, finished: int, waiting: int, sent: int) -> dict[str, str]:
    """One instance of each kind made by eddic, then cloned in SQL. The template ids."""
    app = App(db_url=url)
    try:
        app.initialize()
        ids = {
            "done": app.start(idle_fleet_done, instance_id="done"),
            "timer": app.start(idle_fleet_timer, instance_id="timer"),
            "event": app.start(idle_fleet_event, instance_id="event"),
        }
    finally:
        app.shutdown()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {SCHEMA}")
        statuses = dict(conn.execute("SELECT instance_id, status FROM instances").fetchall())
        conn.execute(
            "INSERT INTO outbox (event_id, instance_id, seq, event_type, source, data, time, "
            "status, attempts, next_attempt_at, sent_at) VALUES "
            "('sent', 'done', 1, 'idle_fleet.sent', 'bench', 'null', now(), 'sent', 1, now(), "
            "now())"
        )
        clone(conn, "done", 1, finished - 1)
        clone(conn, "timer", 1, waiting // 2 - 1)
        clone(conn, "event", 1, waiting - waiting // 2 - 1)
        clone_sent(conn, 1, sent - 1, finished)
        conn.execute("VACUUM ANALYZE")  # so that autovacuum has nothing to do in the windows
        counts = conn.execute(
            "SELECT status, count(*) FROM instances GROUP BY status ORDER BY status"
        ).fetchall()
        outbox = conn.execute("SELECT status, count(*) FROM outbox GROUP BY status").fetchall()
    print(f"  templates: {statuses}")
    print(f"  instances: {', '.join(f'{s} {n:,}' for s, n in counts)}")
    print(f"  outbox:    {', '.join(f'{s} {n:,}' for s, n in outbox)}")
    return ids


def top_up(url: str, finished: int, sent: int, timers: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path = {SCHEMA}")
        have = conn.execute(
            "SELECT count(*) FROM instances WHERE workflow_name = 'idle_fleet_done'"
        ).fetchone()[0]  # type: ignore[index]
        clone(conn, "done", 10_000_000, finished - have)
        have = conn.execute(
            "SELECT count(*) FROM instances WHERE workflow_name = 'idle_fleet_timer'"
        ).fetchone()[0]  # type: ignore[index]
        clone(conn, "timer", 10_000_000, timers - have)
        rows = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]  # type: ignore[index]
        clone_sent(conn, 10_000_000, sent - rows, finished)
        conn.execute("VACUUM ANALYZE")
        for table in ("instances", "history", "outbox"):
            size, pages = conn.execute(
                "SELECT reltuples::bigint, relpages FROM pg_class WHERE oid = %s::regclass",
                [f"{SCHEMA}.{table}"],
            ).fetchone()  # type: ignore[misc]
            print(f"  {table}: {size:,} rows, {pages:,} pages of 8 kB")


# -- measuring ---------------------------------------------------------------------------------


def cpu_seconds(pid: int, *, reaped: bool = False) -> float:
    """utime + stime of ``pid`` (with ``reaped``: also of its children it has waited for)."""
    fields = pg_server._proc_stat(pid)  # fields after the command name: state is [0]
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat: the noise around us."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


DB_COUNTERS = (
    *("commits", "rollbacks", "returned", "fetched", "inserted", "updated", "deleted"),
    *("blks_hit", "blks_read"),
)


class Snapshot:
    def __init__(self, server: pg_server.EmbeddedServer, admin: Any, db: str, workers: list[int]):
        self.at = time.monotonic()
        assert server._process is not None
        postmaster = server._process.pid
        children = pg_server._children(postmaster)
        self.server_cpu = cpu_seconds(postmaster, reaped=True) + sum(map(cpu_seconds, children))
        backends = [
            r[0]
            for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [db],
            ).fetchall()
        ]
        self.backends = {pid: cpu_seconds(pid) for pid in backends}
        self.worker_cpu = {pid: cpu_seconds(pid) for pid in workers}
        row = admin.execute(
            "SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, "
            "tup_updated, tup_deleted, blks_hit, blks_read FROM pg_stat_database "
            "WHERE datname = %s",
            [db],
        ).fetchone()
        self.db = dict(zip(DB_COUNTERS, row, strict=True))
        self.tables = table_stats(server.url_for(db))
        self.wal = int(admin.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])
        self.wal_records, self.wal_fpi = admin.execute(
            "SELECT wal_records, wal_fpi FROM pg_stat_wal"
        ).fetchone()
        self.checkpoints = admin.execute(
            "SELECT num_timed + num_requested FROM pg_stat_checkpointer"
        ).fetchone()[0]
        self.machine = machine_busy()


TABLE_COUNTERS = ("seq_scan", "idx_scan", "n_tup_ins", "n_tup_upd", "n_tup_del")


def table_stats(url: str) -> dict[str, tuple[int, ...]]:
    """Scans and rows written per table, eddic's and the catalogs' (a connection of its own to
    the database: one transaction of the measurer's in each snapshot, which the database's
    counts include). Counts reach the view as ``pg_stat_database``'s do."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT schemaname || '.' || relname, "
            f"{', '.join(f'coalesce({c}, 0)' for c in TABLE_COUNTERS)} "
            "FROM pg_stat_all_tables WHERE schemaname IN (%s, 'pg_catalog')",
            [SCHEMA],
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def statements(admin: Any, db: str) -> list[tuple[Any, ...]]:
    return admin.execute(
        "SELECT query, calls, total_exec_time, rows, shared_blks_hit + shared_blks_read "
        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = %s) "
        "AND query NOT LIKE '%%pg_stat_all_tables%%' ORDER BY calls DESC",
        [db],
    ).fetchall()


def one_line(sql: str, width: int = 92) -> str:
    text = re.sub(r"\s+", " ", sql).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def window(
    name: str,
    server: pg_server.EmbeddedServer,
    admin: Any,
    db: str,
    workers: list[int],
    seconds: float,
) -> dict[str, float]:
    admin.execute("SELECT pg_stat_statements_reset()")
    before = Snapshot(server, admin, db, workers)
    time.sleep(seconds)
    after = Snapshot(server, admin, db, workers)
    stmts = statements(admin, db)
    span = after.at - before.at
    server_cpu = after.server_cpu - before.server_cpu
    # a backend's CPU over the window (one connected after the first snapshot: all of it)
    backend_cpu = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in after.backends.items())
    worker_cpu = sum(after.worker_cpu[p] - before.worker_cpu.get(p, 0.0) for p in workers)
    delta = {k: after.db[k] - before.db[k] for k in after.db}
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    n = max(1, len(workers))
    print(f"\n== {name}: {span:.1f} s, {len(workers)} workers, {len(after.backends)} backends")
    print(f"  machine busy (everything on it): {100 * busy / total:.0f} % of {os.cpu_count()} CPUs")
    print(f"  server CPU (all postgres processes): {100 * server_cpu / span:6.2f} % of one core")
    print(f"    of it, the workers' backends:      {100 * backend_cpu / span:6.2f} % of one core")
    if workers:
        print(
            f"  workers' own CPU (Python):           {100 * worker_cpu / span:6.2f} % of one core"
        )
        print(
            f"  per idle worker: server {100 * server_cpu / span / n:.3f} %, its backends "
            f"{100 * backend_cpu / span / n:.3f} %, the worker {100 * worker_cpu / span / n:.3f} %"
        )
    writes = delta["inserted"] + delta["updated"] + delta["deleted"]
    print(
        f"  transactions {delta['commits'] / span:.2f}/s committed, "
        f"{delta['rollbacks'] / span:.2f}/s rolled back; rows written {writes / span:.2f}/s "
        f"(ins {delta['inserted']}, upd {delta['updated']}, del {delta['deleted']}); "
        f"WAL {(after.wal - before.wal) / span:,.0f} B/s"
    )
    print(
        f"  WAL (whole server): {after.wal_records - before.wal_records} records, "
        f"{after.wal_fpi - before.wal_fpi} full-page images; "
        f"{after.checkpoints - before.checkpoints} checkpoints"
    )
    print(
        f"  rows read: {delta['returned'] / span:,.0f}/s returned by scans, "
        f"{delta['fetched'] / span:,.0f}/s fetched; buffers hit {delta['blks_hit'] / span:,.0f}/s,"
        f" read {delta['blks_read'] / span:,.0f}/s"
    )
    print(f"    {'table':<24} " + " ".join(f"{c + '/s':>11}" for c in TABLE_COUNTERS))
    for table, now in sorted(after.tables.items()):
        was = before.tables.get(table, (0,) * len(TABLE_COUNTERS))
        rates = [(a - b) / span for a, b in zip(now, was, strict=True)]
        # eddic's tables when touched; a catalog only when written (autovacuum's ANALYZE)
        shown = any(rates) if table.startswith(SCHEMA + ".") else any(rates[2:])
        if shown:
            print(f"    {table:<24} " + " ".join(f"{r:>11.3f}" for r in rates))
    calls = sum(s[1] for s in stmts)
    print(
        f"  statements (pg_stat_statements): {calls / span:.2f}/s, {calls / span / n:.3f}/s/worker"
    )
    print(f"    {'calls/s':>8} {'mean ms':>8} {'rows/call':>9} {'bufs/call':>9}  statement")
    for query, c, total_ms, rows, bufs in stmts[:25]:
        print(
            f"    {c / span:>8.3f} {total_ms / c:>8.3f} {rows / c:>9.1f} {bufs / c:>9.1f}  "
            f"{one_line(query)}"
        )
    return {
        "server": server_cpu / span,
        "backends": backend_cpu / span,
        "workers": worker_cpu / span,
        "commits": delta["commits"] / span,
        "writes": writes / span,
        "statements": calls / span,
    }


# -- the workers -------------------------------------------------------------------------------


@contextlib.contextmanager
def fleet(url: str, count: int, poll: float | None, outbox: bool) -> Iterator[list[int]]:
    logs = Path(tempfile.mkdtemp(prefix="eddic-idle-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    env["EDDIC_IDLE_DB"] = url
    code = ["--app", f"{MODULE}:outbox_app"] if outbox else ["--import", MODULE]
    args = [sys.executable, "-m", "eddic", "serve", "--db", url, *code]
    if poll is not None:
        args += ["--poll", str(poll)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            with open(logs / f"worker{i}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE)
                )
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        bad = [i for i, p in enumerate(procs) if p.returncode not in (0, -signal.SIGTERM)]
        for i in bad[:2]:
            print(f"worker {i} exited {procs[i].returncode}:")
            print((logs / f"worker{i}.log").read_text()[-3000:])
        for f in logs.iterdir():
            f.unlink()
        logs.rmdir()


def wait_connected(admin: Any, db: str, want: int, pids: list[int], timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = "
            "'eddic' AND backend_type = 'client backend'",
            [db],
        ).fetchone()[0]
        if got >= want or time.monotonic() > deadline:
            return int(got)
        if any(pg_server._proc_stat(p) is None for p in pids):
            raise RuntimeError("a worker exited while starting")
        time.sleep(0.2)


# -- EXPLAIN of the polling queries ------------------------------------------------------------


class Recorder:
    """A cursor that keeps each statement (SQL, parameters) it runs: what eddic sends."""

    def __init__(self, cur: Any, seen: list[tuple[str, Any]]) -> None:
        self._cur = cur
        self._seen = seen

    def execute(self, sql: Any, params: Any = None, **kwargs: Any) -> Any:
        self._seen.append((sql, params))
        return self._cur.execute(sql, params, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)


def capture(url: str, calls: dict[str, Callable[[Any], Any]]) -> dict[str, list[tuple[str, Any]]]:
    """The statements each call of the store sends, run for real and rolled back."""
    from eddic.storage import open_store

    store: Any = open_store(url)
    store.open()
    units = store.units
    captured: dict[str, list[tuple[str, Any]]] = {}
    try:
        for name, call in calls.items():
            seen: list[tuple[str, Any]] = []

            def run(work: Any, *, write: bool = True, notify: Any = None, _seen: Any = seen) -> Any:
                with units.pool().connection() as conn:
                    with conn.cursor() as cur:
                        result = work(Recorder(cur, _seen))
                    conn.rollback()
                return result

            units.run = run
            try:
                call(store)
            finally:
                del units.run
            captured[name] = seen
    finally:
        store.close()
    return captured


BIG_TABLES = ("instances", "history", "outbox", "attempts", "event_waits", "mailbox")
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s|%s")


def dollar_params(sql: str, params: Any) -> tuple[str, list[Any]]:
    """psycopg's ``%s`` / ``%(name)s`` query as PostgreSQL's ``$n`` one, and its values."""
    values: list[Any] = []
    names: dict[str, int] = {}
    positional = iter(params or ())

    def swap(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        if m.group(1) is None:
            values.append(next(positional))
            return f"${len(values)}"
        if m.group(1) not in names:
            values.append(params[m.group(1)])
            names[m.group(1)] = len(values)
        return f"${names[m.group(1)]}"

    return _PLACEHOLDER.sub(swap, sql), values


def explain_all(url: str, now: datetime) -> list[str]:
    """Each polling statement under EXPLAIN ANALYZE: its values inlined (the custom plan a
    backend makes for its first runs) and as a prepared statement forced to a generic plan (what
    psycopg's prepared statements may get after that). Run in transactions rolled back."""
    far = now + timedelta(days=365)
    calls: dict[str, Callable[[Any], Any]] = {
        "due_instances": lambda s: s.due_instances(now),
        "stale_instances": lambda s: s.stale_instances(now),
        "next_wake": lambda s: s.next_wake(),
        "next_wake(exclude)": lambda s: s.next_wake(exclude=["x", "y"]),
        "claim": lambda s: s.claim(now, "bench", 16, 300.0),
        "acquire": lambda s: s.acquire("timer", "bench", now, 300.0),
        "outbox.due_heads": lambda s: s.outbox.due_heads(now, None, 100),
        "outbox.pending": lambda s: s.outbox.pending(),
        "outbox.claim": lambda s: s.outbox.claim(1, 1, far, now),
    }
    flagged: list[str] = []
    with psycopg.connect(url, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute(f"SET search_path = {SCHEMA}")
        conn.execute("SET TimeZone = 'UTC'")
        conn.commit()
        explain = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY OFF) "
        for name, stmts in capture(url, calls).items():
            for sql, params in stmts:
                if "pg_current_xact_id" in str(sql):
                    continue
                print(f"\n-- {name}: {one_line(str(sql), 400)}")
                dollar, values = dollar_params(str(sql), params)
                plans = {}
                plans["custom plan"] = conn.execute(explain + sql, params).fetchall()
                conn.rollback()
                conn.execute("SET plan_cache_mode = force_generic_plan")
                conn.execute("PREPARE idle_q AS " + dollar.replace("%", "%%"))
                marks = ", ".join(["%s"] * len(values))
                execute = f"EXECUTE idle_q({marks})" if values else "EXECUTE idle_q"
                plans["generic plan"] = conn.execute(explain + execute, values).fetchall()
                conn.rollback()
                conn.execute("DEALLOCATE idle_q")  # a prepared statement outlives a rollback
                conn.execute("RESET plan_cache_mode")
                conn.commit()
                for label, rows in plans.items():
                    print(f"   [{label}]")
                    for (line,) in rows:
                        print(f"     {line}")
                        m = re.search(r"Seq Scan on (\w+)", line)
                        if m and m.group(1) in BIG_TABLES:
                            flagged.append(f"{name} ({label}): {line.strip()}")
    return flagged


# -- main --------------------------------------------------------------------------------------


def describe_code() -> str:
    import eddic

    where = Path(eddic.__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "log", "-1", "--format=%h %cs"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(where)
    return f"{where} at {head}{' (with uncommitted changes)' if dirty else ''}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0, help="each measured window")
    parser.add_argument("--baseline", type=float, default=30.0, help="the server alone")
    parser.add_argument("--settle", type=float, default=15.0, help="after the workers connect")
    parser.add_argument("--finished", type=int, default=10_000)
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--sent", type=int, default=10_000, help="delivered outbox rows")
    parser.add_argument("--explain-finished", type=int, default=100_000)
    parser.add_argument("--explain-sent", type=int, default=100_000, help="outbox rows")
    parser.add_argument(
        "--explain-waiting", type=int, default=0, help="timer-waiting instances (0: as before)"
    )
    parser.add_argument("--poll", type=float, default=None, help="eddic serve --poll")
    parser.add_argument("--outbox", action="store_true", help="workers relay the outbox")
    parser.add_argument("--no-explain", action="store_true")
    args = parser.parse_args()

    settings = {
        "shared_preload_libraries": "'pg_stat_statements'",
        "pg_stat_statements.max": "1000",
    }
    server = pg_server.start_embedded(settings=settings)
    try:
        db = f"bench_idle_{os.getpid()}"
        url = server.create_database(db)
        with server.admin() as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")  # read from here, cluster-wide
            version = admin.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            print(f"PostgreSQL {version} (embedded, fsync and synchronous_commit on)")
            print(f"eddic from {describe_code()}")
            print(f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
            print("\nfilling the database")
            populate(url, args.finished, args.waiting, args.sent)
            base = window("baseline: the server alone", server, admin, db, [], args.baseline)
            with fleet(url, args.workers, args.poll, args.outbox) as pids:
                got = wait_connected(admin, db, 2 * args.workers, pids)
                print(f"\n{args.workers} workers up, {got} eddic connections; settling")
                time.sleep(args.settle)
                mode = " relaying the outbox" if args.outbox else ""
                idle = window(
                    f"{args.workers} idle workers{mode}", server, admin, db, pids, args.seconds
                )
            print("\n== summary (% of one core; per second)")
            extra = idle["server"] - base["server"]
            n = args.workers
            print(
                f"  server: {100 * base['server']:.2f} % alone, {100 * idle['server']:.2f} % with "
                f"{n} idle workers: +{100 * extra:.2f} % (+{100 * extra / n:.3f} % per worker)"
            )
            print(
                f"  workers' backends {100 * idle['backends'] / n:.3f} % per worker; "
                f"workers' Python {100 * idle['workers'] / n:.3f} % per worker"
            )
            print(
                f"  per worker: {idle['statements'] / n:.3f} statements/s, "
                f"{(idle['commits'] - base['commits']) / n:.3f} transactions/s, "
                f"{idle['writes'] / n:.3f} rows written/s"
            )
        if not args.no_explain:
            print(
                f"\n== EXPLAIN of the polling queries: {args.explain_finished:,} finished "
                f"instances, {args.explain_sent:,} delivered outbox rows"
                + (f", {args.explain_waiting:,} on timers" if args.explain_waiting else "")
            )
            top_up(url, args.explain_finished, args.explain_sent, args.explain_waiting)
            flagged = explain_all(url, datetime.now().astimezone())
            print(
                "\nseq scans on eddic's tables:" if flagged else "\nno seq scan on eddic's tables"
            )
            for line in flagged:
                print(f"  {line}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
