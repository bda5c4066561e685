"""``AsyncApp`` (design §9), on both backends: every call is a coroutine that never blocks the
event loop (a ticker task keeps its 10 ms beat while a 0.5 s activity runs inline), the calls
mirror App's, ``serve`` runs as a task and stops when cancelled, ``wait`` polls without a
thread; a bare ASGI application (what a FastAPI or Starlette route does) serves through it."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from eddic import AsyncApp, WaitEvent, WorkflowCancelled, WorkflowContext, activity, workflow

pytestmark = pytest.mark.both_backends


@activity(name="aa_slow")
def aa_slow(order: str) -> str:
    time.sleep(0.5)  # a blocking body: it must not block the loop
    return f"done {order}"


@workflow(name="aa_order")
def aa_order(ctx: WorkflowContext, order: str) -> str:
    result = yield aa_slow(order)
    event = yield WaitEvent("aa.go")
    return f"{result} {event.data}"


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_schema_url"))
    return f"sqlite:///{tmp_path / 'async.db'}"


# The ``app`` fixture is what selects the backends of a both_backends module.
@pytest.fixture
def app(url: str) -> str:
    return url


def test_the_loop_keeps_its_beat_while_an_activity_runs_inline(app: str) -> None:
    async def main() -> tuple[list[float], str, str]:
        beats: list[float] = []

        async def ticker() -> None:
            while True:
                beats.append(time.monotonic())
                await asyncio.sleep(0.01)

        async with AsyncApp(db_url=app) as eddic:
            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0.05)
            iid = await eddic.start(aa_order, "A1")  # runs the 0.5 s activity inline
            status = (await eddic.get_instance(iid))["status"]
            await eddic.send_event("aa.go", "now", instance_id=iid)
            result = await eddic.result(iid)
            tick.cancel()
        return beats, status, result

    beats, status, result = asyncio.run(main())
    assert status == "waiting_for_event"
    assert result == "done A1 now"
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert len(beats) > 30 and max(gaps) < 0.25, max(gaps)  # never held for the 0.5 s


def test_submit_serve_wait_cancel_and_the_reads(app: str) -> None:
    async def main() -> tuple[str, list[str], int, bool]:
        async with AsyncApp(db_url=app, timer_poll_interval=0.05) as eddic:
            serving = asyncio.create_task(eddic.serve(threads=2))
            iid = await eddic.submit(aa_order, "B2")
            while (await eddic.get_instance(iid))["status"] != "waiting_for_event":
                await asyncio.sleep(0.02)
            await eddic.send_event("aa.go", "later", instance_id=iid, inline=False)
            result = await eddic.wait(iid, timeout=10)
            other = await eddic.start(aa_order, "C3")
            cancelled = await eddic.cancel(other, reason="no")
            with pytest.raises(WorkflowCancelled):
                await eddic.wait(other, timeout=10)
            names = [i["workflow_name"] for i in await eddic.list_instances()]
            records = len(await eddic.history(iid))
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
        return result, names, records, cancelled

    result, names, records, cancelled = asyncio.run(main())
    assert result == "done B2 later"
    assert names == ["aa_order", "aa_order"] and records == 4 and cancelled is True


def test_wait_times_out_without_blocking(app: str) -> None:
    async def main() -> float:
        async with AsyncApp(db_url=app) as eddic:
            iid = await eddic.submit(aa_order, "D4")
            began = time.monotonic()
            with pytest.raises(TimeoutError):
                await eddic.wait(iid, timeout=0.2)
            return time.monotonic() - began

    assert asyncio.run(main()) < 2


def asgi_service(eddic: AsyncApp) -> Any:
    """A bare ASGI application on an AsyncApp (what a FastAPI or Starlette route would do)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] == "POST" and scope["path"] == "/orders":
            status, answer = 202, {"id": await eddic.submit(aa_order, json.loads(body)["order"])}
        elif scope["method"] == "GET" and scope["path"].startswith("/orders/"):
            info = await eddic.get_instance(scope["path"].removeprefix("/orders/"))
            status, answer = 200, {"status": info["status"]}
        else:
            status, answer = 404, {}
        payload = json.dumps(answer).encode()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": payload})

    return app


async def asgi_request(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, Any]:
    """An ASGI test client: one request through the application, its status and JSON body."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


def test_an_asgi_application_serves_orders_through_async_app(app: str) -> None:
    async def main() -> list[Any]:
        async with AsyncApp(db_url=app, timer_poll_interval=0.05) as eddic:
            serving = asyncio.create_task(eddic.serve(threads=2))
            service = asgi_service(eddic)
            status, created = await asgi_request(service, "POST", "/orders", b'{"order": "E5"}')
            iid = created["id"]
            while (await eddic.get_instance(iid))["status"] != "waiting_for_event":
                await asyncio.sleep(0.02)
            shown = await asgi_request(service, "GET", f"/orders/{iid}")
            missing = await asgi_request(service, "GET", "/nowhere")
            serving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await serving
        return [status, shown, missing]

    status, shown, missing = asyncio.run(main())
    assert status == 202
    assert shown == (200, {"status": "waiting_for_event"})
    assert missing[0] == 404
