"""One of several worker processes sharing one database file (see ``test_concurrency.py``).

    python tests/concurrency/cc_worker.py DB INDEX WORKERS PER_KIND MODE DEADLINE_S

Worker ``INDEX`` of ``WORKERS`` starts ``PER_KIND`` instances of each workflow below (ids
``cc-w{INDEX}-{kind}-{j}``) and serves the whole database until every instance of every worker
has finished and the outbox is drained: ``MODE`` ``serve`` runs ``app.serve()`` in a thread
(stopped with ``app.shutdown()``; worker 0 with one thread, the others with ``threads=3``),
``loop`` calls ``app.run_due()`` in the main thread.
Meanwhile it broadcasts ``cc.go`` while anything waits for it (with event ids shared by the
workers, so the same event reaches an instance from several processes) and sends the two
targeted events each ``targeted`` instance of worker ``INDEX + 1`` needs.

Every activity body appends ``instance seq attempt pid`` to ``DB.effects-INDEX`` and the outbox
sink appends ``event_id event_type time_ns`` to ``DB.deliveries-INDEX``, so the test can prove
nothing ran or was delivered twice. The worker prints one JSON line (its report) and exits 0
when no call into eddic raised; every exception is reported with its traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from eddic import (
    ActivityContext,
    All,
    App,
    Event,
    EventTimeout,
    First,
    InstanceNotFound,
    Publish,
    RetryPolicy,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    workflow,
)

TERMINAL = ("completed", "failed", "cancelled")
KINDS = ("timer", "broadcast", "race", "targeted")
EFFECTS = ""  # set in main()
DELIVERIES = ""


def append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


class CcInput(BaseModel):
    tag: str
    delay: float


def record_effect(ctx: ActivityContext) -> None:
    append_line(EFFECTS, f"{ctx.instance_id} {ctx.seq} {ctx.attempt} {os.getpid()}")


@activity
def cc_step(ctx: ActivityContext, tag: str, n: int) -> str:
    record_effect(ctx)
    ctx.publish("cc.step", data={"tag": tag, "n": n})
    return f"{tag}:{n}"


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0.2, backoff=1.5))
def cc_flaky(ctx: ActivityContext, tag: str) -> int:
    """Fails twice, so two durable backoff timers run (possibly fired by another process)."""
    record_effect(ctx)
    if ctx.attempt < 3:
        raise RuntimeError(f"transient failure {ctx.attempt} of {tag}")
    return ctx.attempt


@workflow
def cc_timer(ctx: WorkflowContext, inp: CcInput) -> dict[str, Any]:
    first = yield cc_step(inp.tag, 1)
    yield Sleep(inp.delay)
    attempts = yield cc_flaky(inp.tag)
    yield Publish("cc.timer.done", data={"tag": inp.tag})
    return {"first": first, "attempts": attempts}


@workflow
def cc_broadcast(ctx: WorkflowContext, inp: CcInput) -> dict[str, Any]:
    yield cc_step(inp.tag, 1)
    try:
        event = yield WaitEvent("cc.go", timeout=40)
    except EventTimeout:
        return {"outcome": "timeout"}
    last = yield cc_step(inp.tag, 2)
    return {"outcome": "event", "event": event.id, "last": last}


@workflow
def cc_race(ctx: WorkflowContext, inp: CcInput) -> dict[str, Any]:
    yield Sleep(inp.delay / 2)
    # Odd instances give the timer a head start, so both sides of the race get exercised.
    odd = int(inp.tag.rsplit("-", 1)[1]) % 2
    index, value = yield First(WaitEvent("cc.go"), Sleep(0.02 if odd else inp.delay))
    winner = "event" if index == 0 else "timer"
    yield cc_step(inp.tag, 1)
    return {"outcome": winner, "event": value.id if isinstance(value, Event) else None}


@workflow
def cc_targeted(ctx: WorkflowContext, inp: CcInput) -> dict[str, Any]:
    ping = yield WaitEvent("cc.ping", timeout=40)
    both = yield All(cc_step(inp.tag, 1), cc_step(inp.tag, 2))
    pong = yield WaitEvent("cc.pong", timeout=40)  # usually already in the mailbox
    yield Publish("cc.targeted.done", data={"tag": inp.tag})
    return {"outcome": "event", "ping": ping.data, "pong": pong.data, "both": both}


WORKFLOWS = {"timer": cc_timer, "broadcast": cc_broadcast, "race": cc_race, "targeted": cc_targeted}


class Worker:
    def __init__(self, db: str, index: int, workers: int, per_kind: int, mode: str) -> None:
        self.index = index
        self.workers = workers
        self.per_kind = per_kind
        self.mode = mode
        self.errors: list[str] = []
        self.logs: list[str] = []
        self.sent_targeted: set[str] = set()
        self.broadcasts = 0
        self.reached = 0
        self.app = App(
            db_url=db if "://" in db else f"sqlite:///{db}",
            service_name=f"cc-worker-{index}",
            outbox_enabled=True,
            outbox_sink=self.sink,
            timer_poll_interval=0.1,
            recovery_interval_seconds=1.0,
        )

    def sink(self, event: Event) -> None:
        append_line(DELIVERIES, f"{event.id} {event.type} {time.time_ns()}")

    def call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call into eddic; any exception is a failure of the test, reported with its traceback."""
        try:
            return func(*args, **kwargs)
        except Exception:
            self.errors.append(f"{what}: {traceback.format_exc()}")
            return None

    def ids(self, index: int, kind: str) -> list[str]:
        return [f"cc-w{index}-{kind}-{j}" for j in range(self.per_kind)]

    # -- the parts of one round --

    def start_some(self, j: int) -> None:
        for k, kind in enumerate(KINDS):
            delay = 0.2 + 0.8 * ((self.index + j + k) % 5) / 4  # 0.2 .. 1.0 s
            iid = f"cc-w{self.index}-{kind}-{j}"
            inp = {"tag": iid, "delay": delay}
            self.call(f"start {iid}", self.app.start, WORKFLOWS[kind], input=inp, instance_id=iid)

    def send_targeted(self) -> None:
        """Both events of each ``targeted`` instance of the next worker, once it exists."""
        target_worker = (self.index + 1) % self.workers
        for iid in self.ids(target_worker, "targeted"):
            if iid in self.sent_targeted:
                continue
            try:
                info = self.app.get_instance(iid)
            except InstanceNotFound:
                continue  # not started yet
            except Exception:
                self.errors.append(f"get_instance {iid}: {traceback.format_exc()}")
                continue
            if info["status"] in TERMINAL:
                self.errors.append(f"{iid} finished before its events were sent: {info}")
                self.sent_targeted.add(iid)
                continue
            self.sent_targeted.add(iid)
            for event_type in ("cc.ping", "cc.pong"):
                data = {"from": self.index, "type": event_type}
                event_id = f"{event_type}-{iid}"
                self.call(
                    f"send {event_type} to {iid}",
                    self.app.send_event,
                    event_type,
                    data=data,
                    id=event_id,
                    instance_id=iid,
                )

    def broadcast(self) -> None:
        # Workers sending in the same quarter second share the event id: each instance takes
        # it once, whichever process delivered it first.
        event_id = f"cc.go-{int(time.time() * 4)}"
        reached = self.call("broadcast cc.go", self.app.send_event, "cc.go", id=event_id)
        self.broadcasts += 1
        self.reached += len(reached or [])

    def state(self) -> tuple[int, int, int]:
        """(instances seen, unfinished, outbox rows pending) across all workers."""
        rows = self.call("list_instances", self.app.list_instances, limit=None) or []
        unfinished = sum(1 for r in rows if r["status"] not in TERMINAL)
        pending = self.call("outbox.pending", self.app.storage.outbox.pending)
        return len(rows), unfinished, int(bool(pending))

    # -- the whole run --

    def run(self, deadline: float) -> dict[str, Any]:
        handler = _Collect(self.logs)
        logging.getLogger("eddic").addHandler(handler)
        logging.getLogger("eddic").propagate = False
        self.call("initialize", self.app.initialize)
        server = None
        if self.mode == "serve":
            server = threading.Thread(
                target=self.call,
                args=("serve", self.app.serve),
                # worker 0 serves with one thread, worker 2 with three (instances side by side)
                kwargs={"idle_sleep_max": 0.05, "threads": 1 if self.index == 0 else 3},
                name=f"cc-serve-{self.index}",
            )
            server.start()
        expected = self.workers * self.per_kind * len(KINDS)
        started = time.monotonic()
        j = 0
        seen = unfinished = pending = -1
        rounds = 0
        while time.monotonic() - started < deadline:
            rounds += 1
            if j < self.per_kind:
                self.start_some(j)
                j += 1
            self.send_targeted()
            if rounds % 2 == 0:
                self.broadcast()
            if self.mode == "loop":
                self.call("run_due", self.app.run_due)
            seen, unfinished, pending = self.state()
            if j == self.per_kind and seen == expected and unfinished == 0 and not pending:
                break
            time.sleep(0.05)
        else:
            self.errors.append(
                f"deadline: {seen}/{expected} instances seen, {unfinished} unfinished, "
                f"outbox pending: {bool(pending)}"
            )
        if server is not None:
            self.call("shutdown", self.app.shutdown)
            server.join(timeout=15)
            if server.is_alive():
                self.errors.append("serve() did not return after shutdown()")
        else:
            self.call("shutdown", self.app.shutdown)
        return {
            "worker": self.index,
            "pid": os.getpid(),
            "mode": self.mode,
            "errors": self.errors,
            "logs": self.logs,
            "broadcasts": self.broadcasts,
            "broadcast_reached": self.reached,
            "targeted_sent_to": sorted(self.sent_targeted),
            "seconds": round(time.monotonic() - started, 2),
        }


class _Collect(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(f"{record.levelname} {record.getMessage()}")


def main(argv: list[str]) -> int:
    global EFFECTS, DELIVERIES
    db, index, workers, per_kind, mode, deadline, *rest = argv
    side = rest[0] if rest else db  # where the side files go (a URL names no file)
    EFFECTS = f"{side}.effects-{index}"
    DELIVERIES = f"{side}.deliveries-{index}"
    worker = Worker(db, int(index), int(workers), int(per_kind), mode)
    try:
        report = worker.run(float(deadline))
    except Exception:
        report = {"worker": int(index), "errors": [traceback.format_exc()], "logs": worker.logs}
    print(json.dumps(report), flush=True)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
