"""Running crash-test workers and reading what they left behind.

``Workers`` launches ``worker.py`` processes: through its fork server by default (one interpreter
with eddic imported, a fresh ``fork()`` per run, so a run costs milliseconds, not the ~0.6 s of
importing pydantic and sqlite-utils), or, with ``EDDIC_CRASH_FORK=0``, as a brand-new
``sys.executable worker.py ...`` process per run. Either way each run is its own process, with its
own database connections, and a crash is a real ``SIGKILL``.

A ``Database`` is where one story's workers meet: an SQLite file, or a PostgreSQL database of the
test's own (``postgres_db_url``), with the side-effect logs beside the file or at a base path of
their own. ``on_both_backends`` runs a test's cases on each: SQLite's keep their ids, PostgreSQL's
are prefixed ``postgres-``.

``read_store`` reads the database with plain ``sqlite3`` or ``psycopg`` (the same queries) and the
two side-effect logs; the ``check_*`` functions assert the durability contract on one order.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("worker.py")
KILLED = -9
STATS: Counter[str] = Counter()  # shown at the end of the run by conftest.py

HAPPY_STEPS = ("reserve", "pay", "ship")
FAILING_STEPS = ("reserve", "pay", "ship", "refund", "cancel")
RECORDED_NAMES = {
    "reserve": "crash_reserve_inventory",
    "pay": "crash_process_payment",
    "ship": "crash_ship_order",
    "refund": "crash_refund_payment",
    "cancel": "crash_cancel_reservation",
}
HAPPY_EVENTS = ("inventory.reserved", "payment.processed", "order.shipped")
FAILING_EVENTS = (
    "inventory.reserved",
    "payment.processed",
    "payment.refunded",
    "inventory.cancelled",
)


def steps_of(fails: bool) -> tuple[str, ...]:
    return FAILING_STEPS if fails else HAPPY_STEPS


def events_of(fails: bool) -> tuple[str, ...]:
    return FAILING_EVENTS if fails else HAPPY_EVENTS


# -- where the workers meet ------------------------------------------------------------------------

BACKENDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Database:
    """An SQLite file (``target`` is its path) or a PostgreSQL database (``target`` its URL);
    ``side`` is the base path of the side-effect logs and run logs (the file itself for SQLite,
    whose workers put them beside it)."""

    backend: str
    target: str
    side: Path

    @classmethod
    def open(cls, request: pytest.FixtureRequest, backend: str, path: Path) -> Database:
        if backend == "sqlite":
            return cls("sqlite", str(path), path)
        assert backend == "postgres", backend
        # A database of this test's own: its connections, locks and NOTIFY channel too.
        return cls("postgres", str(request.getfixturevalue("postgres_db_url")), path)

    def worker_args(self) -> list[str]:
        """What the worker is given before its mode: the file, or the URL and ``--side``."""
        if self.backend == "sqlite":
            return [self.target]
        return [self.target, "--side", str(self.side)]

    def log(self, name: str) -> Path:
        return self.side.with_name(f"{self.side.name}.{name}.log")


def on_both_backends(params: Sequence[Any], postgres: Sequence[Any] | None = None) -> list[Any]:
    """Each ``pytest.param`` once per backend, the backend first: SQLite's case keeps its id
    (``-k`` and node ids of the SQLite-only days still name it), PostgreSQL's is ``postgres-ID``.
    ``postgres``, when given, are the cases to run there instead (fewer, say)."""
    out = [pytest.param("sqlite", *p.values, id=p.id, marks=p.marks) for p in params]
    for p in params if postgres is None else postgres:
        out.append(pytest.param("postgres", *p.values, id=f"postgres-{p.id}", marks=p.marks))
    return out


# -- running workers -------------------------------------------------------------------------------


@dataclass
class Run:
    argv: list[str]
    returncode: int
    output: str
    seconds: float = 0.0  # wall time of the process, shown when a story fails

    @property
    def killed(self) -> bool:
        return self.returncode == KILLED

    @property
    def crash(self) -> str:
        """The crash point this run was given."""
        return self.argv[self.argv.index("--crash") + 1]

    def __str__(self) -> str:
        # A PostgreSQL URL carries the test server's password: keep it out of failure reports.
        argv = " ".join(re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", a) for a in self.argv)
        head = f"worker {argv} -> {self.returncode} ({self.seconds:.2f} s)"
        return f"{head}\n{self.output}"


class Workers:
    """Runs ``worker.py`` with given arguments, each run in its own process."""

    def __init__(self, fork: bool | None = None) -> None:
        if fork is None:
            fork = os.environ.get("EDDIC_CRASH_FORK", "1") != "0" and hasattr(os, "fork")
        self.fork = fork
        self._server: subprocess.Popen[str] | None = None
        self._env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

    def run(self, argv: list[str], log: Path) -> Run:
        begin = time.monotonic()
        run = self._run(argv, log)
        run.seconds = time.monotonic() - begin
        return run

    def _run(self, argv: list[str], log: Path) -> Run:
        if not self.fork:
            done = subprocess.run(
                [sys.executable, str(WORKER), *argv],
                capture_output=True,
                text=True,
                timeout=120,
                env=self._env,
            )
            return Run(argv, done.returncode, done.stdout + done.stderr)
        server = self._start_server()
        assert server.stdin is not None and server.stdout is not None
        server.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        server.stdin.flush()
        answer = server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the worker fork server died (exit {server.wait()})")
        return Run(argv, json.loads(answer)["returncode"], log.read_text(encoding="utf-8"))

    def _start_server(self) -> subprocess.Popen[str]:
        if self._server is None:
            self._server = subprocess.Popen(
                [sys.executable, str(WORKER), "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=self._env,
            )
        return self._server

    def close(self) -> None:
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            self._server.wait(timeout=30)
            self._server = None


@dataclass
class Story:
    """One database's life: the start run and every recovery run, in order."""

    database: Database
    runs: list[Run] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(run.killed for run in self.runs)

    def __str__(self) -> str:
        return "\n".join(str(run) for run in self.runs)


def crash_and_recover(
    workers: Workers,
    database: Database,
    *,
    fail_shipping: str = "never",
    crashes: list[str],
    instances: int = 1,
    workflow: str = "order",
    threads: int = 1,
) -> Story:
    """Start with ``crashes[0]``, recover once per further crash point, then recover cleanly.

    Each recovery moves the clock one hour further than the previous one, past every lease.
    """
    story = Story(database)
    common = ["--workflow", workflow, "--fail-shipping", fail_shipping]
    common += ["--instances", str(instances), "--threads", str(threads)]
    plan = [("start", crashes[0] if crashes else "none")]
    plan += [("recover", point) for point in crashes[1:]]
    plan.append(("recover", "none"))
    for generation, (mode, point) in enumerate(plan):
        argv = [*database.worker_args(), mode, *common]
        argv += ["--crash", point, "--hours-ahead", str(generation)]
        run = workers.run(argv, database.log(f"run{generation}"))
        story.runs.append(run)
        STATS["worker processes"] += 1
        if run.killed:
            STATS[f"kills ({run.crash.split(':')[0]}, {database.backend})"] += 1
    return story


# -- reading what is left --------------------------------------------------------------------------


@dataclass
class Effect:
    order: str
    step: str
    phase: str  # start | end
    attempt: int
    key: str


@dataclass
class Store:
    instances: dict[str, dict[str, Any]]
    history: dict[str, list[dict[str, Any]]]
    outbox: dict[str, list[dict[str, Any]]]
    attempts: dict[str, list[dict[str, Any]]]
    effects: list[Effect]
    deliveries: list[tuple[str, str, str]]  # (event id, type, order id), in delivery order

    def runs(self, order: str, step: str, phase: str) -> int:
        return sum(1 for e in self.effects if (e.order, e.step, e.phase) == (order, step, phase))


# The same queries on both backends: the two schemas name and order these columns alike.
QUERIES = {
    "instances": "SELECT * FROM instances",
    "history": "SELECT * FROM history ORDER BY instance_id, pos",
    "outbox": "SELECT * FROM outbox ORDER BY id",
    "attempts": "SELECT * FROM attempts ORDER BY instance_id, seq",
}


def _query_sqlite(path: str) -> dict[str, list[dict[str, Any]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return {name: [dict(r) for r in conn.execute(sql)] for name, sql in QUERIES.items()}
    finally:
        conn.close()


def _query_postgres(url: str) -> dict[str, list[dict[str, Any]]]:
    import psycopg
    from psycopg.rows import dict_row

    base, _, schema = url.partition("?schema=")
    with psycopg.connect(base, row_factory=dict_row) as conn:
        conn.execute("SELECT set_config('search_path', %s, false)", [f'"{schema or "eddic"}"'])
        return {name: conn.execute(sql).fetchall() for name, sql in QUERIES.items()}


def _by_instance(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(row["instance_id"], []).append(row)
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def read_store(database: Database) -> Store:
    if database.backend == "sqlite":
        tables = _query_sqlite(database.target)
    else:
        tables = _query_postgres(database.target)
    instances = {r["instance_id"]: r for r in tables["instances"]}
    history = _by_instance(tables["history"])
    outbox = _by_instance(tables["outbox"])
    attempts = _by_instance(tables["attempts"])
    effects = []
    for line in _lines(Path(f"{database.side}.effects")):
        order, step, phase, attempt, key = line.split()
        effects.append(Effect(order, step, phase, int(attempt.split("=")[1]), key.split("=")[1]))
    deliveries = [tuple(line.split()) for line in _lines(Path(f"{database.side}.deliveries"))]
    return Store(instances, history, outbox, attempts, effects, deliveries)  # type: ignore[arg-type]


# -- the contract, for one order -------------------------------------------------------------------


def instance_id_of(order: str) -> str:
    return f"crash-{order}"


def check_order_finished_with_everything_recorded_once(
    store: Store, order: str, fails: bool
) -> None:
    """Final status, history, outbox and bookkeeping of one order after recovery."""
    iid = instance_id_of(order)
    assert iid in store.instances, f"{iid} was never started"
    row = store.instances[iid]
    expected_status = "failed" if fails else "completed"
    assert row["status"] == expected_status, f"{iid}: {row['status']}, error {row['error']}"
    if fails:
        error = json.loads(row["error"])
        assert "Shipping service unavailable" in error["message"], error
        assert not error.get("compensation_errors"), error
    else:
        output = json.loads(row["output_data"])
        assert output["order_id"] == order
        assert output["tracking_number"] == f"TRACK-{order}"
    assert row["lock_owner"] is None, f"{iid} still leased by {row['lock_owner']}"
    assert store.attempts.get(iid, []) == [], f"{iid}: attempt bookkeeping left behind"

    history = store.history[iid]
    assert [r["pos"] for r in history] == list(range(1, len(history) + 1)), "gap in history"
    scheduled = [r for r in history if r["record"] == "scheduled"]
    resolved = Counter(r["seq"] for r in history if r["record"] == "resolved")
    assert [r["name"] for r in scheduled] == [RECORDED_NAMES[s] for s in steps_of(fails)]
    assert len({r["seq"] for r in scheduled}) == len(scheduled), "a command scheduled twice"
    assert resolved == Counter(r["seq"] for r in scheduled), (
        f"{iid}: every scheduled command must be resolved exactly once, got {dict(resolved)}"
    )
    failed = [r["seq"] for r in history if r["record"] == "resolved" and r["failure"]]
    assert failed == ([scheduled[2]["seq"]] if fails else []), "only shipping may fail"

    outbox = store.outbox.get(iid, [])
    assert [r["event_type"] for r in outbox] == list(events_of(fails)), "one row per event"
    assert len({r["event_id"] for r in outbox}) == len(outbox)
    assert all(r["status"] == "sent" for r in outbox), [
        (r["event_type"], r["status"]) for r in outbox
    ]


def check_deliveries(store: Store, order: str) -> Counter[str]:
    """Every outbox row reached the sink, first in outbox order; returns deliveries per event id."""
    rows = store.outbox.get(instance_id_of(order), [])
    mine = [d for d in store.deliveries if d[2] == order]
    seen = Counter(event_id for event_id, _type, _order in mine)
    first_seen = list(dict.fromkeys(event_id for event_id, _type, _order in mine))
    assert first_seen == [r["event_id"] for r in rows], "events delivered out of order or lost"
    return seen


def check_bodies_are_consistent(store: Store, order: str, fails: bool) -> None:
    """Each body ran at least once, finished at least once, and kept its key; only the saga's
    own steps ran; a rerun saw a later attempt number."""
    for step in FAILING_STEPS:
        runs = [e for e in store.effects if (e.order, e.step) == (order, step)]
        if step not in steps_of(fails):
            assert runs == [], f"{order}: {step} ran but is not on this path"
            continue
        starts = [e for e in runs if e.phase == "start"]
        assert starts, f"{order}: the {step} body never ran"
        assert store.runs(order, step, "end") >= 1, f"{order}: the {step} body never finished"
        assert len({e.key for e in runs}) == 1, f"{order}: {step} idempotency key changed"
        attempts = [e.attempt for e in starts]
        assert attempts == sorted(set(attempts)), f"{order}: {step} attempts {attempts}"
