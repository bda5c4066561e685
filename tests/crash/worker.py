"""A worker process that runs an order saga and kills itself with SIGKILL at a chosen point.

The crash tests run this script in child processes (see ``crash_harness.py``) and then inspect the
database (plain ``sqlite3``, or ``psycopg`` on PostgreSQL). It can also be run by hand::

    python tests/crash/worker.py /tmp/c.db start --fail-shipping always --crash body:refund:inside
    python tests/crash/worker.py /tmp/c.db recover --hours-ahead 1

The first argument is an SQLite file's path, or a ``postgresql://`` URL; a URL names no file, so
it needs ``--side BASE``, the base path of the side-effect logs below (for a file it defaults to
the file's path)::

    python tests/crash/worker.py postgresql://u:pw@127.0.0.1:5432/db start --side /tmp/pg

Modes:

``start``    start ``--instances`` orders (ids ``crash-ORD-1`` ...), then relay the outbox.
``recover``  with the clock moved ``--hours-ahead`` hours forward (past every lease), start the
             same orders again (an idempotent no-op for those that exist) and call
             ``app.run_due()`` until every order is finished and the outbox is drained (jumping
             the frozen clock to the next timer when only timers are left).

``--workflow order`` (default) is the saga: reserve -> pay -> ship, compensated by refund and
cancel when shipping fails (``--fail-shipping never|always|alternate``). ``--workflow flaky`` and
``flaky-backoff`` call one activity that always fails, retried up to 3 attempts with no wait or
with a 30 s backoff.

Crash points (``--crash``), all injected from here, never from eddic's code:

``none``                           run to the end.
``body:STEP:WHEN[:K]``             in the K-th run (default 1) of a body, STEP one of reserve, pay,
                                   ship, refund, cancel, flaky; WHEN is ``before`` (nothing done),
                                   ``inside`` (the start marker is written, the end marker is not)
                                   or ``after`` (the body is done, its result is not committed).
``write:N:WHEN``                   at this process's N-th step write (SQLite: ``steps.write_rows``;
                                   PostgreSQL: ``steps.write_step``, and ``steps.write_rows`` for a
                                   start's first step): WHEN is ``before`` (inside the transaction,
                                   nothing of the step written), ``uncommitted`` (written, the
                                   server has run the statements, not committed) or ``committed``
                                   (right after the COMMIT returned).
``relay:N``                        in the outbox sink, after receiving the N-th event of this
                                   process and before the relay marks its row sent.
``stop:STEP``                      not a crash: inside the STEP body (start marker written) the
                                   process stops itself with SIGSTOP, for the parent to let another
                                   worker take the lease over and then wake it with SIGCONT.

Every body appends ``ORDER STEP start|end attempt=A key=K`` to ``SIDE.effects`` and the sink appends
``EVENT_ID TYPE ORDER`` to ``SIDE.deliveries``, each line flushed and fsync'ed, so the parent can
count how often each side effect happened, whatever killed the process.

``--serve`` turns the script into a small fork server (used by the tests to skip the ~0.6 s import
of pydantic, sqlite-utils and psycopg per process): it reads one JSON request per line on stdin,
forks a child that runs ``main(argv)`` with its output sent to a log file, waits for it and
answers ``{"returncode": ...}`` (``-9`` for a SIGKILL). The server never opens a database (a
forked child must not share its parent's connections); every child is a separate process with
its own connections, killed for real.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NoReturn

from freezegun import freeze_time
from pydantic import BaseModel

from eddic import (
    ActivityContext,
    App,
    Event,
    RetryPolicy,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.storage import Storage
from eddic.storage.sqlite import steps

STEPS = ("reserve", "pay", "ship", "refund", "cancel", "flaky")
WRITE_POINTS = ("before", "uncommitted", "committed")
CHILD_TIMEOUT_SECONDS = 120  # a hung child is killed by SIGALRM instead of hanging the tests
# numpy (imported by a dependency) lazily imports half of itself when freezegun scans it.
FREEZEGUN_IGNORE = ["numpy"]

# -- where to crash --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrashPoint:
    kind: str = "none"  # none | body | write | relay | stop
    step: str = ""  # body: which body
    when: str = ""  # body: before/inside/after; write: before/uncommitted/committed
    number: int = 1  # body: which run of it; write: which write; relay: which delivery

    @classmethod
    def parse(cls, text: str) -> CrashPoint:
        parts = text.split(":")
        kind = parts[0]
        if kind == "none" and len(parts) == 1:
            return cls()
        if kind == "body" and len(parts) in (3, 4):
            step, when = parts[1], parts[2]
            if step in STEPS and when in ("before", "inside", "after"):
                number = int(parts[3]) if len(parts) == 4 else 1
                return cls("body", step, when, number)
        if kind == "write" and len(parts) == 3 and parts[2] in WRITE_POINTS:
            return cls("write", when=parts[2], number=int(parts[1]))
        if kind == "relay" and len(parts) == 2:
            return cls("relay", number=int(parts[1]))
        if kind == "stop" and len(parts) == 2 and parts[1] in STEPS:
            return cls("stop", parts[1], "inside")
        raise ValueError(f"not a crash point: {text!r}")


CRASH = CrashPoint()
_counts: Counter[str] = Counter()
_count_lock = threading.Lock()


def die(where: str) -> NoReturn:
    print(f"killed {where}", flush=True)
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def crash_in_body(step: str, when: str, run: int) -> None:
    if CRASH.kind == "stop" and (CRASH.step, CRASH.when) == (step, when):
        print(f"stopped inside the {step} body", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
        print(f"woken up inside the {step} body", flush=True)
        return
    if CRASH.kind != "body" or CRASH.step != step or CRASH.when != when:
        return
    if run == CRASH.number:
        die(f"{when} run {CRASH.number} of the {step} body")


def next_write() -> int:
    """The number of this step write in this process (threads write steps side by side)."""
    with _count_lock:
        _counts["write"] += 1
        return _counts["write"]


def install_sqlite_write_crash() -> None:
    """Wrap ``eddic.storage.sqlite.steps.write_rows`` (every step's rows, a start's first step
    included) and ``Storage.transaction`` to die around the N-th write."""
    write_rows = steps.write_rows
    transaction = Storage.transaction
    # Not per thread: a group commit is COMMITted by whichever thread leads it, for all of them.
    armed = {"after_commit": False}

    def counting_write_rows(cur: Any, step: Any, now: datetime) -> None:
        hit = next_write() == CRASH.number
        if hit and CRASH.when == "before":
            die(f"before write {CRASH.number}")
        write_rows(cur, step, now)
        if hit and CRASH.when == "uncommitted":
            die(f"after write {CRASH.number}, before its commit")
        armed["after_commit"] = hit

    @contextlib.contextmanager
    def dying_transaction(self: Storage) -> Iterator[Any]:
        with transaction(self) as db:
            yield db
        if armed["after_commit"]:
            die(f"right after the commit of write {CRASH.number}")

    steps.write_rows = counting_write_rows
    Storage.transaction = dying_transaction  # type: ignore[method-assign,assignment]


def install_postgres_write_crash() -> None:
    """Wrap ``eddic.storage.postgres.steps.write_step`` (every step after the first),
    ``steps.write_rows`` where it is called for a start's first step (not where ``write_step``
    calls it: that is the same write), and the units of work (``Units.run``, and
    ``Units.pipelined`` where steps are sent as one pipeline), whose ``COMMIT`` ends each unit,
    to die around the N-th write.

    A write function either runs its statements as it is called, or (pipelined) queues them and
    returns a ``finish`` that the unit calls once every result is in: the step is "written" when
    the call returns, or when ``finish`` does.
    """
    from eddic.storage.postgres import steps as pg_steps
    from eddic.storage.postgres.units import Units

    write_step, write_rows = pg_steps.write_step, pg_steps.write_rows
    # Per thread: each unit is one transaction on a connection of the thread that runs it, so
    # "committed" is the COMMIT of the hit write's own unit, never another thread's.
    local = threading.local()

    def written(hit: bool) -> None:
        if hit and CRASH.when == "uncommitted":
            die(f"after write {CRASH.number}, before its commit")
        local.armed = hit

    def counted(write: Any, *args: Any, **kwargs: Any) -> Any:
        hit = next_write() == CRASH.number
        if hit and CRASH.when == "before":
            die(f"before write {CRASH.number}")
        local.inside = True
        try:
            done = write(*args, **kwargs)
        finally:
            local.inside = False
        if not callable(done):  # its statements have run
            written(hit)
            return done

        def finish() -> Any:  # queued statements: written once their results are in
            result = done()
            written(hit)
            return result

        return finish

    def counting_write_step(*args: Any, **kwargs: Any) -> Any:
        return counted(write_step, *args, **kwargs)

    def counting_write_rows(*args: Any, **kwargs: Any) -> Any:
        if getattr(local, "inside", False):  # write_step's own rows, already counted
            return write_rows(*args, **kwargs)
        return counted(write_rows, *args, **kwargs)

    def dying(unit: Any) -> Any:
        def dying_unit(self: Units, *args: Any, **kwargs: Any) -> Any:
            local.armed = False
            result = unit(self, *args, **kwargs)
            if local.armed:  # the unit's COMMIT has returned: the write is durable
                die(f"right after the commit of write {CRASH.number}")
            return result

        return dying_unit

    pg_steps.write_step = counting_write_step
    pg_steps.write_rows = counting_write_rows
    for name in ("run", "pipelined"):
        if hasattr(Units, name):
            setattr(Units, name, dying(getattr(Units, name)))


# -- durable side-effect logs ----------------------------------------------------------------------

EFFECTS = ""
DELIVERIES = ""


def append_durably(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def body(ctx: ActivityContext, order_id: str, step: str, event: str | None = None) -> None:
    """The side effect of one activity or compensation, bracketed by durable markers."""
    with _count_lock:  # bodies may run in several threads (--threads)
        _counts[f"body:{step}"] += 1  # runs of this body in this process, for body:STEP:WHEN:K
        run = _counts[f"body:{step}"]
    crash_in_body(step, "before", run)
    marker = f"attempt={ctx.attempt} key={ctx.idempotency_key}"
    append_durably(EFFECTS, f"{order_id} {step} start {marker}")
    crash_in_body(step, "inside", run)
    if event is not None:
        ctx.publish(event, data={"order_id": order_id})
    append_durably(EFFECTS, f"{order_id} {step} end {marker}")
    crash_in_body(step, "after", run)


def sink(event: Event) -> None:
    append_durably(DELIVERIES, f"{event.id} {event.type} {event.data['order_id']}")
    _counts["relay"] += 1
    if CRASH.kind == "relay" and _counts["relay"] == CRASH.number:
        die(f"in the relay, after receiving event {CRASH.number} before it was marked sent")


# -- the saga (the seed's order_processing, under its own names) -----------------------------------


class CrashItem(BaseModel):
    sku: str
    quantity: int
    unit_price: float


class CrashOrder(BaseModel):
    order_id: str
    items: list[CrashItem]
    ship_fails: bool = False


class CrashReceipt(BaseModel):
    order_id: str
    total: float
    tracking_number: str


# A crash counts as an attempt and no attempt beyond max_attempts begins, so the saga's steps
# allow more attempts than the harness has kills in a row for one body (at most four).
CRASH_ATTEMPTS = 10
# The shipping failure of the failure path is final at once, as it was with a bare @activity.
SURVIVES_CRASHES = RetryPolicy(
    max_attempts=CRASH_ATTEMPTS, initial_interval=0, non_retryable=(RuntimeError,)
)


@compensation(retry=SURVIVES_CRASHES)
def crash_cancel_reservation(ctx: ActivityContext, order_id: str) -> dict[str, bool]:
    body(ctx, order_id, "cancel", "inventory.cancelled")
    return {"cancelled": True}


@compensation(retry=SURVIVES_CRASHES)
def crash_refund_payment(ctx: ActivityContext, order_id: str, amount: float) -> dict[str, bool]:
    body(ctx, order_id, "refund", "payment.refunded")
    return {"refunded": True}


@activity(retry=SURVIVES_CRASHES)
@on_failure(crash_cancel_reservation)
def crash_reserve_inventory(
    ctx: ActivityContext, order_id: str, items: list[CrashItem]
) -> dict[str, Any]:
    body(ctx, order_id, "reserve", "inventory.reserved")
    return {
        "reservation_id": f"RES-{order_id}",
        "total": sum(i.quantity * i.unit_price for i in items),
    }


@activity(retry=SURVIVES_CRASHES)
@on_failure(crash_refund_payment)
def crash_process_payment(ctx: ActivityContext, order_id: str, amount: float) -> dict[str, Any]:
    body(ctx, order_id, "pay", "payment.processed")
    return {"transaction_id": f"TXN-{order_id}", "amount": amount}


@activity(retry=SURVIVES_CRASHES)
def crash_ship_order(ctx: ActivityContext, order_id: str, fail: bool) -> dict[str, str]:
    body(ctx, order_id, "ship", None if fail else "order.shipped")
    if fail:
        raise RuntimeError("Shipping service unavailable!")
    return {"tracking_number": f"TRACK-{order_id}"}


@workflow
def crash_order(ctx: WorkflowContext, order: CrashOrder):  # type: ignore[no-untyped-def]
    reservation = yield crash_reserve_inventory(order.order_id, order.items)
    payment = yield crash_process_payment(order.order_id, reservation["total"])
    shipment = yield crash_ship_order(order.order_id, order.ship_fails)
    return CrashReceipt(
        order_id=order.order_id,
        total=payment["amount"],
        tracking_number=shipment["tracking_number"],
    )


# -- a retried activity that always fails (``--workflow flaky`` / ``flaky-backoff``) ---------------

FLAKY_ATTEMPTS = 3


def flaky_body(ctx: ActivityContext, order_id: str) -> None:
    body(ctx, order_id, "flaky")
    raise RuntimeError(f"attempt {ctx.attempt} failed")


@activity(retry=RetryPolicy(max_attempts=FLAKY_ATTEMPTS, initial_interval=0))
def crash_flaky_step(ctx: ActivityContext, order_id: str) -> None:
    flaky_body(ctx, order_id)


@activity(retry=RetryPolicy(max_attempts=FLAKY_ATTEMPTS, initial_interval=30))
def crash_flaky_step_with_backoff(ctx: ActivityContext, order_id: str) -> None:
    flaky_body(ctx, order_id)


@workflow
def crash_flaky(ctx: WorkflowContext, order: CrashOrder):  # type: ignore[no-untyped-def]
    yield crash_flaky_step(order.order_id)


@workflow
def crash_flaky_with_backoff(ctx: WorkflowContext, order: CrashOrder):  # type: ignore[no-untyped-def]
    yield crash_flaky_step_with_backoff(order.order_id)


WORKFLOWS = {
    "order": crash_order,
    "flaky": crash_flaky,
    "flaky-backoff": crash_flaky_with_backoff,
}

# -- running it ------------------------------------------------------------------------------------


def instance_id_of(order_id: str) -> str:
    return f"crash-{order_id}"


def planned_orders(count: int, fail_shipping: str) -> list[CrashOrder]:
    """``count`` orders; shipping fails for none, all, or every second one (``alternate``)."""
    orders = []
    for n in range(1, count + 1):
        fails = fail_shipping == "always" or (fail_shipping == "alternate" and n % 2 == 0)
        items = [CrashItem(sku=f"SKU-{n}", quantity=n % 3 + 1, unit_price=9.5)]
        orders.append(CrashOrder(order_id=f"ORD-{n}", items=items, ship_fails=fails))
    return orders


def run(
    app: App, orders: list[CrashOrder], workflow: str, clock: Any = None, threads: int = 1
) -> int:
    """Start (or, when they exist, just look up) the orders, then work until all are finished.

    ``threads`` > 1 starts the orders from that many threads at once, so that their steps
    share commits (group commit) and a kill can cut a shared commit.
    When recovering, ``clock`` is freezegun's: when a pass leaves only timers to wait for (retry
    backoff), the clock jumps to the earliest one instead of sleeping.
    """

    def start(order: CrashOrder) -> None:
        app.start(WORKFLOWS[workflow], input=order, instance_id=instance_id_of(order.order_id))

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(start, orders))
    else:
        for order in orders:
            start(order)
    if clock is None:
        app.run_due()
        while app.relay_outbox():
            pass
        return 0
    for _ in range(100):
        app.run_due()
        statuses = [app.get_instance(instance_id_of(o.order_id))["status"] for o in orders]
        finished = all(s in ("completed", "failed") for s in statuses)
        if finished and not app.storage.outbox.pending():
            return 0
        wake = app.storage.next_wake()
        if wake is not None and wake > datetime.now(timezone.utc):
            clock.move_to(wake)
    print(f"recovery did not converge: {statuses}", flush=True)
    return 3


def main(argv: list[str] | None = None) -> int:
    global CRASH, EFFECTS, DELIVERIES
    parser = argparse.ArgumentParser(description="run the crash-test order saga")
    parser.add_argument("db", help="an SQLite database file's path, or a postgresql:// URL")
    parser.add_argument("mode", choices=("start", "recover"))
    parser.add_argument(
        "--fail-shipping", choices=("never", "always", "alternate"), default="never"
    )
    parser.add_argument("--crash", default="none", help="crash point, see the module docstring")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--hours-ahead", type=float, default=1.0, help="recover: clock jump")
    parser.add_argument("--workflow", choices=sorted(WORKFLOWS), default="order")
    parser.add_argument("--threads", type=int, default=1, help="start the orders from N threads")
    parser.add_argument("--side", help="base path of the side-effect logs (default: the db file)")
    args = parser.parse_args(argv)
    postgres = "://" in args.db
    if postgres and not args.side:
        parser.error("a database URL names no file: give --side BASE for the side-effect logs")

    CRASH = CrashPoint.parse(args.crash)
    side = args.side or args.db
    EFFECTS, DELIVERIES = f"{side}.effects", f"{side}.deliveries"
    _counts.clear()
    if CRASH.kind == "write":
        (install_postgres_write_crash if postgres else install_sqlite_write_crash)()
    orders = planned_orders(args.instances, args.fail_shipping)
    app = App(
        db_url=args.db if postgres else f"sqlite:///{os.path.abspath(args.db)}",
        service_name="crash-tests",
        outbox_enabled=True,
        outbox_sink=sink,
    )
    with app:
        if args.mode == "start":
            return run(app, orders, args.workflow, threads=args.threads)
        later = datetime.now(timezone.utc) + timedelta(hours=args.hours_ahead)
        with freeze_time(later, tick=True, ignore=FREEZEGUN_IGNORE) as clock:
            return run(app, orders, args.workflow, clock, threads=args.threads)


# -- the fork server -------------------------------------------------------------------------------


def run_child(argv: list[str], log_path: str) -> NoReturn:
    code = 1
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        signal.alarm(CHILD_TIMEOUT_SECONDS)
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> int:
    # Import the PostgreSQL backend (psycopg, its pool) once, here, for every child to inherit;
    # importing opens no connection. Without the extra, SQLite runs still work.
    with contextlib.suppress(ImportError):
        import eddic.storage.postgres.store  # noqa: F401

    # Scan the loaded modules for freezegun once, here, so that every child inherits the cache.
    with freeze_time(datetime.now(timezone.utc), ignore=FREEZEGUN_IGNORE):
        pass
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request["argv"], request["log"])
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.exit(serve())
    sys.exit(main())
