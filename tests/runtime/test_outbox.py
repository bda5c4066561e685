"""The transactional outbox: rows written with the step, relayed in order, retried, given up."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from freezegun import freeze_time

from eddic import ActivityContext, App, Event, Publish, WorkflowContext, activity, workflow
from eddic.kernel import derived_uuid

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@activity
def ob_work(ctx: ActivityContext, n: int) -> int:
    ctx.publish("work.done", data={"n": n})
    return n


@workflow
def ob_flow(ctx: WorkflowContext, n: int) -> str:
    yield ob_work(n)
    event_id = yield Publish("flow.done", data={"n": n}, source="flows")
    return str(event_id)


def rows(app: App) -> list[tuple[Any, ...]]:
    fields = ("instance_id", "seq", "event_type", "source", "status", "attempts")
    return [tuple(r[f] for f in fields) for r in app.storage.outbox.rows(limit=1000)]


def test_publish_writes_outbox_rows_even_without_a_relay(app: App) -> None:
    iid = app.start(ob_flow, input=1)
    assert rows(app) == [
        (iid, 1, "work.done", "tests", "pending", 0),
        (iid, 2, "flow.done", "flows", "pending", 0),
    ]
    assert app.result(iid) == str(derived_uuid(iid, 2))  # stable: uuid5 of instance and seq


def test_the_relay_delivers_in_order_per_instance_and_marks_rows_sent(db_path: Path) -> None:
    seen: list[Event] = []
    with App(db_url=f"sqlite:///{db_path}", outbox_enabled=True, outbox_sink=seen.append) as app:
        a = app.start(ob_flow, input=1)
        b = app.start(ob_flow, input=2)
        app.run_due()
        for iid, n in ((a, 1), (b, 2)):
            mine = [e for e in seen if e.data["n"] == n]
            assert [e.type for e in mine] == ["work.done", "flow.done"]
            assert mine[1].id == str(derived_uuid(iid, 2))
        assert len(seen) == 4
        assert {r[4] for r in rows(app)} == {"sent"}


def test_a_failing_sink_is_retried_with_backoff_then_given_up_without_blocking_others(
    db_path: Path,
) -> None:
    delivered: list[str] = []

    def sink(event: Event) -> None:
        if event.data["n"] == 1:
            raise ConnectionError("sink down")
        delivered.append(f"{event.type}:{event.data['n']}")

    url = f"sqlite:///{db_path}"
    with (
        freeze_time(T0) as clock,
        App(db_url=url, outbox_enabled=True, outbox_sink=sink, outbox_max_attempts=3) as app,
    ):
        bad = app.start(ob_flow, input=1)
        app.start(ob_flow, input=2)
        app.run_due()
        assert delivered == ["work.done:2", "flow.done:2"]
        assert rows(app)[0][4:] == ("pending", 1)
        app.run_due()  # backoff: not due yet
        assert rows(app)[0][4:] == ("pending", 1)
        clock.tick(timedelta(seconds=1))
        app.run_due()
        assert rows(app)[0][4:] == ("pending", 2)
        clock.tick(timedelta(seconds=2))
        app.run_due()
        assert rows(app)[0][4:] == ("failed", 3)
        clock.tick(timedelta(hours=1))
        app.run_due()
        held = [r for r in rows(app) if r[0] == bad]
        assert [r[4] for r in held] == ["failed", "pending"]  # later rows are held back


def test_a_sink_that_hangs_times_out(db_path: Path) -> None:
    release = threading.Event()
    with App(
        db_url=f"sqlite:///{db_path}",
        outbox_enabled=True,
        outbox_sink=lambda event: release.wait(5),
        outbox_timeout_seconds=0.2,
    ) as app:
        app.start(ob_flow, input=1)
        app.relay_outbox()
        error = app.storage.outbox.rows(limit=1)[0]["last_error"]
        assert "did not return within 0.2s" in error
        release.set()


class _Receiver(BaseHTTPRequestHandler):
    failures_left = 2
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Receiver.failures_left > 0:
            _Receiver.failures_left -= 1
            self.send_response(503)
        else:
            _Receiver.received.append((self.headers["Content-Type"], body))
            self.send_response(202)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.failures_left = 2
    _Receiver.received = []
    yield f"http://127.0.0.1:{server.server_port}/events"
    server.shutdown()
    server.server_close()


def test_an_http_sink_receives_structured_cloudevents_after_two_failures(
    db_path: Path, receiver: str
) -> None:
    with (
        freeze_time(T0, real_asyncio=True) as clock,
        App(db_url=f"sqlite:///{db_path}", outbox_enabled=True, outbox_sink=receiver) as app,
    ):
        iid = app.start(ob_flow, input=7)
        app.run_due()
        clock.tick(1)
        app.run_due()
        clock.tick(2)
        app.run_due()
        app.run_due()
    assert [body["type"] for _ct, body in _Receiver.received] == ["work.done", "flow.done"]
    content_type, body = _Receiver.received[1]
    assert content_type == "application/cloudevents+json"
    assert body["specversion"] == "1.0"
    assert body["id"] == str(derived_uuid(iid, 2))
    assert body["source"] == "flows"
    assert body["data"] == {"n": 7}
