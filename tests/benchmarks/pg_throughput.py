"""eddic on PostgreSQL against the raw commit rate, side by side on one server, in one run.

    python tests/benchmarks/pg_throughput.py                 # 3 rounds, 1,000 workflows each
    python tests/benchmarks/pg_throughput.py --quick         # a short smoke run
    python tests/benchmarks/pg_throughput.py --profile       # also count and profile (untimed)

Each round measures, in this order, on one server (tests/pg_server.py: embedded, fsync and
``synchronous_commit`` on; or ``EDDIC_TEST_POSTGRES_URL``):

(a) the raw commit rate: one small-row ``INSERT`` per transaction (autocommit, one round trip),
    ``synchronous_commit=on``, from 1 and from 8 connections: ``pg_raw_commits.measure``;
(b) eddic, ``--workflows`` order workflows of 3 trivial activities (``throughput.py``'s
    ``bench_order``), each on a fresh schema (``?schema=``) of one database, warmed up first:

    - ``inline xN``: ``App.start`` from N threads of one App (N = 1, 8, 16); each start runs
      its instance to completion in the calling thread: 4 commits per workflow (the start with
      the first activity's scheduled record, then one per activity);
    - ``serve xN``: what ``serve(threads=N)`` drains. ``App.submit`` does not exist yet, so the
      instances are made waiting: ``bench_gated`` waits for a ``bench.go`` event, then runs
      ``bench_order``'s body. They are started (timed apart, 8 threads, reported as
      ``created/s``), the event is stored for all of them in one transaction
      (``storage.deliver``: ``send_event`` without its inline resume, which would run them in
      this thread), and a fresh App (nothing cached: a worker that did not start them, as a
      submit's worker would be) serves with N threads until every instance has completed
      (polled every 20 ms). Each drained workflow costs its lease, the step that consumes the
      event and schedules the first activity, and one commit per activity: it stands for a
      submitted instance, whose worker would take the lease and record the first decision.
    - ``submit xN`` (``--submit``): the same drain over ``bench_order`` instances recorded by
      ``App.submit`` (from 8 threads, timed apart): what a serving worker does for work handed
      to it by callers that do not wait, with no event and no mailbox read.

    activities/s = 3 x workflows / wall; ratio = activities/s / the same round's raw rate
    from one connection (the issue's target for ``inline x1``: >= 50 %; for 8-16 threads or
    ``serve x16``: >= 4,000 activities/s);
(c) after the rounds: the wake-up latency from a ``NOTIFY`` to an instance resumed by a serving
    worker in another process (``pg_wakeup.measure_wakeups``, target p50 <= 50 ms).

Rounds are outermost, so a drift of the disk or of other jobs on the machine spreads over every
figure; medians of the rounds are printed, and the ratios of each round's pair.

``--profile`` then counts, in an untimed pass, the storage units (``Units.run``), SQL
statements, round trips and commits per workflow for ``inline x1`` and ``serve x8``, reads
the server's view of the same pass from ``pg_stat_statements`` (when the embedded server can
preload it: then for the whole run), and prints a CPU profile (cProfile on
``time.process_time``) of one ``inline x1`` run, by area and by function.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import pg_raw_commits  # puts tests/ on sys.path, for pg_server
import pg_server
import psycopg
from pg_wakeup import measure_wakeups
from pg_wakeup import report as wakeup_report
from psycopg.pq import TransactionStatus
from throughput import ACTIVITIES_PER_WORKFLOW, BenchOrder, BenchReceipt, bench_order, order

from eddic import App, WaitEvent, workflow
from eddic.clock import utcnow
from eddic.storage.postgres import wire
from eddic.storage.postgres.units import Units

WARM = 30  # workflows per App before its timed run: imports, adapters, the pool's connections
GO = "bench.go"
IDLE = TransactionStatus.IDLE


@workflow
def bench_gated(ctx: Any, order: BenchOrder) -> BenchReceipt:
    """``bench_order`` behind a wait: started, it waits; once ``bench.go`` is stored it is due."""
    yield WaitEvent(GO)
    receipt = yield from bench_order.func(ctx, order)
    return receipt  # type: ignore[no-any-return]


# -- one measurement each ----------------------------------------------------------------------


class Bench:
    """The server's database for the run: raw table, fresh eddic schemas, an admin connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(url, autocommit=True)
        self.admin.execute(
            "CREATE TABLE IF NOT EXISTS raw_commits (id bigserial PRIMARY KEY, v text)"
        )
        self.schemas = 0

    def close(self) -> None:
        self.admin.close()

    @contextmanager
    def app_url(self, tag: str) -> Iterator[str]:
        """A fresh schema's URL (eddic creates it), dropped afterwards."""
        self.schemas += 1
        schema = f"b{self.schemas}_{tag}"
        try:
            yield pg_server.with_schema(self.url, schema)
        finally:
            self.admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def completed(self, schema_url: str) -> int:
        schema = schema_url.rsplit("schema=", 1)[1]
        row = self.admin.execute(
            f"SELECT count(*) FROM \"{schema}\".instances WHERE status = 'completed'"
        ).fetchone()
        return int(row[0]) if row else 0


def raw_rate(url: str, threads: int, seconds: float) -> float:
    return pg_raw_commits.measure(url, "autocommit", threads, seconds, 10**9)


def round_trip_us(url: str, seconds: float = 1.0) -> float:
    """The median latency of ``SELECT 1`` from one autocommit connection: one round trip."""
    times: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        end = time.perf_counter() + seconds
        while (begin := time.perf_counter()) < end:
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - begin)
    return 1e6 * statistics.median(times)


def start_all(app: App, wf: Any, numbers: range, *, submit: bool = False) -> None:
    begin = app.submit if submit else app.start
    for i in numbers:
        begin(wf, input=order(i))


def start_many(app: App, wf: Any, threads: int, numbers: range, *, submit: bool = False) -> None:
    if threads == 1:
        start_all(app, wf, numbers, submit=submit)
        return
    with ThreadPoolExecutor(threads) as pool:
        for future in [
            pool.submit(start_all, app, wf, numbers[k::threads], submit=submit)
            for k in range(threads)
        ]:
            future.result()


Phase = Callable[[], AbstractContextManager[Any]]


def inline(
    bench: Bench, threads: int, workflows: int, phase: Phase = nullcontext
) -> dict[str, float]:
    """``App.start`` of ``workflows`` order workflows from ``threads`` threads; ``phase()``
    wraps the timed part (the counting pass's hook)."""
    with bench.app_url(f"inline{threads}") as url:
        app = App(db_url=url)
        try:
            app.initialize()
            start_many(app, bench_order, max(threads, 1), range(-WARM, 0))
            with phase():
                cpu = time.process_time()
                begin = time.perf_counter()
                start_many(app, bench_order, threads, range(workflows))
                wall = time.perf_counter() - begin
                cpu = time.process_time() - cpu
            done = bench.completed(url)
        finally:
            app.shutdown()
    assert done == workflows + WARM, f"{done} of {workflows + WARM} completed"
    return {"wall": wall, "cpu": cpu}


def drain(
    bench: Bench,
    threads: int,
    workflows: int,
    phase: Phase = nullcontext,
    *,
    submitted: bool = False,
) -> dict[str, float]:
    """``serve(threads=N)`` of a fresh App over ``workflows`` instances made due at once;
    ``phase()`` wraps the drain (not the creation, nor the event's delivery). ``submitted``:
    the instances are ``bench_order``s recorded by ``App.submit`` (no event, no mailbox)
    rather than gated ``bench_gated``s released by one event."""
    with bench.app_url(f"{'submit' if submitted else 'serve'}{threads}") as url:
        maker = App(db_url=url)
        try:
            maker.initialize()
            begin = time.perf_counter()
            wf = bench_order if submitted else bench_gated
            start_many(maker, wf, 8, range(workflows), submit=submitted)
            created = time.perf_counter() - begin
        finally:
            maker.shutdown()
        app = App(db_url=url)
        app.initialize()
        begin = time.perf_counter()
        if not submitted:
            reached = app.storage.deliver(
                GO, "null", source="bench", event_id=str(uuid.uuid4()), now=utcnow()
            )
            assert len(reached) == workflows, len(reached)
        delivered = time.perf_counter() - begin
        server = threading.Thread(target=app.serve, kwargs={"threads": threads}, daemon=True)
        with phase():
            cpu = time.process_time()
            begin = time.perf_counter()
            server.start()
            try:
                deadline = begin + 600
                while (done := bench.completed(url)) < workflows:
                    if time.perf_counter() > deadline:
                        raise TimeoutError(f"serve drained {done} of {workflows} in 600 s")
                    time.sleep(0.02)
                wall = time.perf_counter() - begin
                cpu = time.process_time() - cpu
            finally:
                app.shutdown()
                server.join(60)
    return {"wall": wall, "cpu": cpu, "created/s": workflows / created, "deliver s": delivered}


# -- counting and profiling (untimed) ----------------------------------------------------------


@contextmanager
def count_round_trips(exclude: Any) -> Iterator[Counter[str]]:
    """Count storage units (``Units.run``, write or read), statements by first word, round
    trips and commits, by wrapping psycopg's and eddic's methods on their classes; the
    connection ``exclude`` (the benchmark's own) is not counted."""
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def add(name: str) -> None:
        with lock:
            counts[name] += 1

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        func = getattr(owner, name)
        originals.append((owner, name, func))
        setattr(owner, name, make(func))

    def run(func: Any) -> Any:
        def counted(self: Any, work: Any, *, write: bool = True, notify: Any = None) -> Any:
            add("units (write)" if write else "units (read)")
            return func(self, work, write=write, notify=notify)

        return counted

    def execute(func: Any) -> Any:
        def counted(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if self.connection is exclude:
                return func(self, query, *args, **kwargs)
            text = query if isinstance(query, str) else str(query)
            word = text.split(None, 1)[0].upper() if text.strip() else "?"
            if "pg_notify" in text:
                word = "NOTIFY"
            elif "pg_current_xact_id" in text:
                word = "XACT_ID"
            conn = self.connection
            if not conn.autocommit and conn.info.transaction_status == IDLE:
                add("sql BEGIN")  # psycopg sends it first, a round trip of its own
                add("round trips")
            add(f"sql {word}")
            add("round trips")
            return func(self, query, *args, **kwargs)

        return counted

    def executemany(func: Any) -> Any:
        def counted(self: Any, query: Any, params_seq: Any, **kwargs: Any) -> Any:
            params_seq = list(params_seq)
            word = str(query).split(None, 1)[0].upper()
            with lock:
                counts[f"sql {word}"] += len(params_seq)
                counts["round trips"] += 1  # psycopg 3 pipelines executemany: one sync
            return func(self, query, params_seq, **kwargs)

        return counted

    def pipelined(func: Any) -> Any:
        def counted(self: Any, work: Any) -> Any:
            add("units (write)")
            return func(self, work)

        return counted

    def pipeline_run(func: Any) -> Any:  # a step: BEGIN and its statements, one round trip
        def counted(self: Any, conn: Any) -> Any:
            with lock:
                counts["sql BEGIN"] += 1
                for sql, _, _ in self._queued:
                    word = "NOTIFY" if "pg_notify" in sql else sql.split(None, 1)[0].upper()
                    counts[f"sql {word}"] += 1
                counts["round trips"] += 1
            return func(self, conn)

        return counted

    def wire_commit(func: Any) -> Any:  # every unit's COMMIT (units._retried)
        def counted(conn: Any) -> Any:
            add("commits")
            add("round trips")
            return func(conn)

        return counted

    wrap(Units, "run", run)
    wrap(Units, "pipelined", pipelined)
    wrap(wire.Pipeline, "run", pipeline_run)
    wrap(wire, "commit", wire_commit)
    wrap(psycopg.Cursor, "execute", execute)
    wrap(psycopg.Cursor, "executemany", executemany)
    try:
        yield counts
    finally:
        for owner, name, func in reversed(originals):
            setattr(owner, name, func)


def pg_stats_reset(bench: Bench) -> bool:
    try:
        bench.admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        bench.admin.execute("SELECT pg_stat_statements_reset()")
        return True
    except psycopg.Error:
        return False


def pg_stats_print(bench: Bench, workflows: int, top: int = 14) -> None:
    rows = bench.admin.execute(
        "SELECT calls, total_exec_time, query FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND query NOT LIKE '%%pg_stat_statements%%' AND query NOT LIKE '%%count(*)%%' "
        "ORDER BY total_exec_time DESC LIMIT %s",
        [top],
    ).fetchall()
    total = bench.admin.execute(
        "SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(calls), 0) FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND query NOT LIKE '%%pg_stat_statements%%' AND query NOT LIKE '%%count(*)%%'"
    ).fetchone()
    assert total is not None
    print(
        f"  server side (pg_stat_statements): {1000 * float(total[0]) / workflows:.0f} us of "
        f"execution in {float(total[1]) / workflows:.1f} statements per workflow (the WAL "
        "flush of COMMIT is not in it); top by execution time:"
    )
    for calls, ms, query in rows:
        text = " ".join(str(query).split())[:88]
        print(f"    {calls / workflows:5.2f} calls {1000 * ms / workflows:7.1f} us  {text}")


def count_pass(bench: Bench, workflows: int, stats: bool) -> None:
    """What one workflow costs, counted over the timed part of ``inline x1`` and ``serve x8``."""
    for name, threads, measure in (("inline x1", 1, inline), ("serve x8", 8, drain)):
        have_stats = stats and pg_stats_reset(bench)
        counts: Counter[str] = Counter()

        @contextmanager
        def phase(counts: Counter[str] = counts, have_stats: bool = have_stats) -> Iterator[None]:
            if have_stats:
                bench.admin.execute("SELECT pg_stat_statements_reset()")
            with count_round_trips(bench.admin) as got:
                yield
            counts.update(got)

        got = measure(bench, threads, workflows, phase)
        per = {k: v / workflows for k, v in counts.items()}
        sql = {k[4:]: v for k, v in per.items() if k.startswith("sql ")}
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(sql.items(), key=lambda kv: -kv[1]))
        print(
            f"\ncosts per workflow, {name} ({ACTIVITIES_PER_WORKFLOW} activities; an untimed "
            f"counting pass of {workflows} workflows{'; the drain alone' if threads > 1 else ''})"
        )
        for key in ("units (write)", "units (read)", "commits", "round trips"):
            print(f"  {key:<16} {per.get(key, 0):6.2f}")
        print(
            f"  wall {1000 * got['wall'] / workflows:.2f} ms, client CPU "
            f"{1000 * got['cpu'] / workflows:.2f} ms per workflow (counting wrappers included)"
        )
        print(f"  statements       {sum(sql.values()):6.2f} ({detail})")
        if have_stats:
            pg_stats_print(bench, workflows)


AREAS = (  # (label, substring of the file path), first match wins
    ("psycopg: Connection.wait (CPU in its poll loop)", "psycopg/connection.py:wait"),
    ("psycopg_pool", "psycopg_pool/"),
    ("psycopg: the rest of the client", "psycopg/"),
    ("eddic storage/postgres", "storage/postgres/"),
    ("eddic storage (shared)", "storage/"),
    ("eddic runtime (app, worker, instance, executor)", "runtime/"),
    ("eddic kernel", "kernel/"),
    ("pydantic", "pydantic"),
    ("eddic other (serde, decorators, clock, context)", "stdlib/"),
    ("the benchmark's workflow and activities", "benchmarks/"),
)


def profile_by_area(func: Callable[[], Any], workflows: int, top: int = 25) -> None:
    """cProfile ``func`` with a CPU clock (``time.process_time``: waiting for the server and
    being descheduled by other jobs do not count); own CPU per workflow by area, then the top
    functions."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    func()
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_area: Counter[str] = Counter()
    total = 0.0
    for (path, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        key = f"{path}:{name}"
        label = next((lbl for lbl, part in AREAS if part in key), "other (stdlib, builtins)")
        by_area[label] += own
    print(
        f"\n--- CPU profile of inline x1, {workflows} workflows (cProfile's overhead included) ---"
    )
    print(f"  own CPU per workflow by area (total {1000 * total / workflows:.2f} ms):")
    for label, own in by_area.most_common():
        print(f"    {1000 * own / workflows:6.3f} ms  {100 * own / total:4.1f} %  {label}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    start = text.find("   ncalls")
    print(f"  top {top} functions by own time:")
    print(text[start:].replace(os.getcwd() + os.sep, "").rstrip())


# -- main --------------------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):>8,.0f}  ({min(values):,.0f}..{max(values):,.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workflows", type=int, default=None, help="per eddic measurement")
    parser.add_argument("--raw-seconds", type=float, default=None, help="per raw measurement")
    parser.add_argument("--inline", default="1,8,16", help="thread counts calling App.start")
    parser.add_argument("--serve", default="8,16", help="serve(threads=N) counts")
    parser.add_argument(
        "--submit", default="", help="serve(threads=N) counts over submitted instances"
    )
    parser.add_argument("--wakeups", type=int, default=None, help="(c): 0 leaves it out")
    parser.add_argument("--profile", action="store_true", help="count and profile (untimed)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    workflows = args.workflows or (100 if args.quick else 1000)
    seconds = args.raw_seconds or (1.0 if args.quick else 3.0)
    wakeups = args.wakeups if args.wakeups is not None else (10 if args.quick else 60)
    sides = (
        [("inline", int(n)) for n in args.inline.split(",") if n]
        + [("serve", int(n)) for n in args.serve.split(",") if n]
        + [("submit", int(n)) for n in args.submit.split(",") if n]
    )
    logging.getLogger("eddic").setLevel(logging.ERROR)

    external = os.environ.get(pg_server.ENV_URL)
    settings = None if external else {"shared_preload_libraries": "'pg_stat_statements'"}
    server: pg_server.Server
    if external:
        server = pg_server.ExternalServer(external)
    else:
        server = pg_server.start_embedded(settings=settings if args.profile else None)
    try:
        url = server.create_database(f"bench_pgtp_{os.getpid()}")
        bench = Bench(url)
        try:
            version = bench.admin.execute("SHOW server_version").fetchone()
            print(
                f"eddic on PostgreSQL {version[0] if version else '?'}: python "
                f"{sys.version.split()[0]}, {os.cpu_count()} CPUs; {rounds} round(s); raw "
                f"{seconds:g} s per measurement; eddic {workflows} workflows x "
                f"{ACTIVITIES_PER_WORKFLOW} activities per measurement"
            )
            raw_rate(url, 1, 1.0)  # warm-up
            inline(bench, 1, 50)
            raw: dict[int, list[float]] = {1: [], 8: []}
            acts: dict[tuple[str, int], list[float]] = {s: [] for s in sides}
            ratios: dict[tuple[str, int], list[float]] = {s: [] for s in sides}
            created: dict[tuple[str, int], list[float]] = {}
            cpus: dict[tuple[str, int], list[float]] = {s: [] for s in sides}
            rtts: list[float] = []
            for r in range(rounds):
                for n in raw:
                    raw[n].append(raw_rate(url, n, seconds))
                rtts.append(round_trip_us(url))
                line = [
                    f"raw x1 {raw[1][-1]:,.0f}/s, x8 {raw[8][-1]:,.0f}/s, "
                    f"SELECT 1 {rtts[-1]:.0f} us"
                ]
                for kind, n in sides:
                    if kind == "inline":
                        got = inline(bench, n, workflows)
                    else:
                        got = drain(bench, n, workflows, submitted=kind == "submit")
                        created.setdefault((kind, n), []).append(got["created/s"])
                    rate = workflows * ACTIVITIES_PER_WORKFLOW / got["wall"]
                    acts[kind, n].append(rate)
                    cpus[kind, n].append(1000 * got["cpu"] / workflows / ACTIVITIES_PER_WORKFLOW)
                    ratios[kind, n].append(rate / raw[1][-1])
                    line.append(f"{kind} x{n} {rate:,.0f} act/s")
                print(f"  round {r + 1}: " + " | ".join(line), flush=True)

            raw1 = statistics.median(raw[1])
            print("\nmedians (min..max) of the rounds")
            print("  raw commits/s (autocommit INSERT, synchronous_commit=on)")
            for n, rates in raw.items():
                print(f"    {n:>2} connection{'s' if n > 1 else ' '}            {spread(rates)}")
            print(f"  one round trip (SELECT 1, 1 connection): {statistics.median(rtts):.0f} us")
            print(
                "  eddic                   activities/s          workflows/s   ratio to raw x1"
                " (of medians; median of the rounds' ratios); client CPU ms per activity"
            )
            for kind, n in sides:
                rates = acts[kind, n]
                med = statistics.median(rates)
                extra = ""
                if kind != "inline":
                    made = statistics.median(created[kind, n])
                    extra = f"   [created by 8 threads at {made:,.0f}/s]"
                print(
                    f"    {kind + ' x' + str(n):<20} {spread(rates)}  "
                    f"{med / ACTIVITIES_PER_WORKFLOW:>8,.0f}     {100 * med / raw1:5.1f} %; "
                    f"{100 * statistics.median(ratios[kind, n]):5.1f} %; "
                    f"cpu {statistics.median(cpus[kind, n]):.3f}{extra}"
                )
            if ("inline", 1) in acts:
                ratio = statistics.median(acts["inline", 1]) / raw1
                met = "met" if ratio >= 0.5 else "NOT met"
                print(f"  target inline x1 >= 50 % of raw x1: {100 * ratio:.1f} %: {met}")
                # What the design itself costs a workflow on this server: its 4 commits, as
                # raw commits of the same round, and the round trip of each step's pipeline
                # before its COMMIT. Zero client CPU would reach this rate, and no more.
                floors = [
                    ACTIVITIES_PER_WORKFLOW / (4 / r + 4 * t / 1e6)
                    for r, t in zip(raw[1], rtts, strict=True)
                ]
                shares = [a / f for a, f in zip(acts["inline", 1], floors, strict=True)]
                share = statistics.median(shares)
                print(
                    f"  inline x1 against its floor (4 raw commits + 4 round trips per workflow: "
                    f"{statistics.median(floors):,.0f} act/s): {100 * share:.1f} % "
                    f"(rounds {', '.join(f'{100 * x:.1f}' for x in shares)}; proposed target "
                    f">= 50 %: {'met' if share >= 0.5 else 'NOT met'})"
                )
            best_side = max(
                (s for s in sides if s != ("inline", 1)),
                key=lambda s: statistics.median(acts[s]),
                default=None,
            )
            if best_side is not None:
                best = statistics.median(acts[best_side])
                met = "met" if best >= 4000 else "NOT met"
                print(
                    f"  target 8-16 threads or serve x16 >= 4,000 activities/s: best "
                    f"{best_side[0]} x{best_side[1]} {best:,.0f}/s: {met}"
                )

            if wakeups > 0:
                print(
                    f"\nwake-up latency, NOTIFY to a resumed instance in another process "
                    f"({wakeups} wake-ups; target p50 <= 50 ms)"
                )
                with bench.app_url("wakeup") as wake_url:
                    for text in wakeup_report(measure_wakeups(wake_url, wakeups)):
                        print(text)

            if args.profile:
                count_pass(bench, 200 if args.quick else 500, stats=not external)
                count = 100 if args.quick else 500
                profile_by_area(lambda: inline(bench, 1, count), count + WARM)
        finally:
            bench.close()
            server.drop_database(url)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
