"""``POST /events`` (``eddic.web.ingress``) over HTTP, on a bare Starlette application and a real
App: the events reach the instances waiting on them, targeted or broadcast, stored by the request
and consumed by the worker's next pass; malformed requests get a clear 4xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from eddic import App, InstanceNotFound, WaitEvent, WorkflowContext, workflow
from eddic.errors import EddicError, StorageError
from eddic.web.cloudevents import BATCH, STRUCTURED, CloudEvent
from eddic.web.ingress import Send, events_endpoint, send_with

TYPE = "payment.confirmed"


@workflow
def ingress_payment(ctx: WorkflowContext, order_id: str) -> dict[str, Any]:
    event = yield WaitEvent(TYPE)
    return {"order": order_id, "id": event.id, "source": event.source, "data": event.data}


@pytest.fixture
def eddic_app(tmp_path: Path) -> Iterator[App]:
    with App(db_url=f"sqlite:///{tmp_path}/e.db", service_name="ingress-tests") as app:
        yield app


def serve(send: Send, **options: Any) -> TestClient:
    endpoint = events_endpoint(send, **options)
    routes = [Route("/events", endpoint, methods=["POST"])]
    return TestClient(Starlette(routes=routes), raise_server_exceptions=False)


@pytest.fixture
def http(eddic_app: App) -> Iterator[TestClient]:
    with serve(send_with(eddic_app)) as client:
        yield client


def event(**members: Any) -> dict[str, Any]:
    base = {"specversion": "1.0", "id": "evt-1", "source": "/billing", "type": TYPE}
    return {**base, **members}


def post(client: TestClient, body: Any, content_type: str = STRUCTURED, **headers: str) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/events", content=raw, headers={"content-type": content_type, **headers})


def unconsumed(app: App, instance_id: str) -> list[tuple[str, Any]]:
    return [(e.id, e.data) for _, e in app.storage.mailbox(instance_id, [TYPE]).get(TYPE, [])]


# -- delivery -------------------------------------------------------------------------------------


def test_a_structured_event_without_instanceid_is_broadcast_stored_then_consumed(
    eddic_app: App, http: TestClient
) -> None:
    a = eddic_app.start(ingress_payment, input="o-1")
    b = eddic_app.start(ingress_payment, input="o-2")

    answer = post(http, event(data={"amount": 5}))

    assert answer.status_code == 202, answer.text
    assert answer.json()["id"] == "evt-1"
    assert sorted(answer.json()["reached"]) == sorted([a, b])
    # stored, not run: a web handler leaves the instances to a worker
    for iid in (a, b):
        assert eddic_app.get_instance(iid)["status"] == "waiting_for_event"
        assert unconsumed(eddic_app, iid) == [("evt-1", {"amount": 5})]

    eddic_app.run_due()

    for iid, order in ((a, "o-1"), (b, "o-2")):
        assert eddic_app.result(iid) == {
            "order": order,
            "id": "evt-1",
            "source": "/billing",
            "data": {"amount": 5},
        }
        assert unconsumed(eddic_app, iid) == []


def test_a_binary_event_with_instanceid_reaches_that_instance_only(
    eddic_app: App, http: TestClient
) -> None:
    a = eddic_app.start(ingress_payment, input="o-1")
    b = eddic_app.start(ingress_payment, input="o-2")
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "evt%2F7",  # percent-encoded: evt/7
        "ce-source": "/billing",
        "ce-type": TYPE,
        "Ce-InstanceId": a,
    }

    answer = post(http, {"amount": 7}, "application/json", **headers)

    assert answer.status_code == 202, answer.text
    assert answer.json() == {"id": "evt/7", "reached": [a]}
    eddic_app.run_due()
    assert eddic_app.result(a)["data"] == {"amount": 7}
    assert eddic_app.result(a)["id"] == "evt/7"
    assert eddic_app.get_instance(b)["status"] == "waiting_for_event"
    assert unconsumed(eddic_app, b) == []


def test_a_targeted_event_sent_before_the_wait_is_not_lost(
    eddic_app: App, http: TestClient
) -> None:
    iid = eddic_app.start(ingress_payment, input="o-1")
    # a broadcast reaches only waiting instances; a targeted send always lands in the mailbox
    eddic_app.run_due()

    answer = post(http, event(instanceid=iid, data=1))

    assert answer.json()["reached"] == [iid]
    eddic_app.run_due()
    assert eddic_app.get_instance(iid)["status"] == "completed"


def test_a_batch_answers_the_instances_each_event_reached(eddic_app: App, http: TestClient) -> None:
    a = eddic_app.start(ingress_payment, input="o-1")
    b = eddic_app.start(ingress_payment, input="o-2")
    batch = [event(id="e-a", instanceid=a, data="A"), event(id="e-b", instanceid=b, data="B")]

    answer = post(http, batch, BATCH)

    assert answer.status_code == 202, answer.text
    assert answer.json() == {
        "events": [{"id": "e-a", "reached": [a]}, {"id": "e-b", "reached": [b]}]
    }
    eddic_app.run_due()
    assert (eddic_app.result(a)["data"], eddic_app.result(b)["data"]) == ("A", "B")


def test_an_empty_batch_is_accepted() -> None:
    with serve(lambda ev: pytest.fail("nothing to send")) as client:
        answer = post(client, [], BATCH)

    assert (answer.status_code, answer.json()) == (202, {"events": []})


def test_a_repeated_event_id_is_ignored_by_the_instance_that_has_it(
    eddic_app: App, http: TestClient
) -> None:
    a = eddic_app.start(ingress_payment, input="o-1")

    first = post(http, event(instanceid=a, data="first"))
    again = post(http, event(instanceid=a, data="second"))
    broadcast_again = post(http, event(data="third"))

    assert first.json()["reached"] == [a]
    assert again.status_code == 202 and again.json()["reached"] == []
    assert broadcast_again.status_code == 202 and broadcast_again.json()["reached"] == []
    assert unconsumed(eddic_app, a) == [("evt-1", "first")]
    eddic_app.run_due()
    assert eddic_app.result(a)["data"] == "first"


def test_send_runs_in_a_worker_thread_not_on_the_event_loop() -> None:
    seen: list[bool] = []

    def send(ev: CloudEvent) -> list[str]:
        try:
            asyncio.get_running_loop()
            seen.append(False)
        except RuntimeError:
            seen.append(True)  # no loop here: a thread of the pool
        return []

    with serve(send) as client:
        assert post(client, event()).status_code == 202

    assert seen == [True]


def test_send_with_takes_a_callable_that_returns_the_app(eddic_app: App) -> None:
    iid = eddic_app.start(ingress_payment, input="o-1")
    opened: list[int] = []

    def writer() -> App:
        opened.append(1)
        return eddic_app

    with serve(send_with(writer)) as client:
        answer = post(client, event(instanceid=iid))

    assert answer.json()["reached"] == [iid]
    assert opened == [1]


# -- refusals -------------------------------------------------------------------------------------


def test_an_unknown_instanceid_is_404(http: TestClient) -> None:
    answer = post(http, event(instanceid="no-such-instance"))

    assert answer.status_code == 404
    assert "no-such-instance" in answer.json()["error"]


def test_an_instanceid_of_a_finished_instance_is_409(eddic_app: App, http: TestClient) -> None:
    iid = eddic_app.start(ingress_payment, input="o-1")
    eddic_app.send_event(TYPE, instance_id=iid)
    assert eddic_app.get_instance(iid)["status"] == "completed"

    answer = post(http, event(id="late", instanceid=iid))

    assert answer.status_code == 409
    assert "finished" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"type=payment.confirmed", "application/x-www-form-urlencoded", 415, "not a CloudEvent"),
        (b"hello", "text/plain", 415, "not a CloudEvent"),
        (b"{nope", STRUCTURED, 400, "not valid JSON"),
        (json.dumps(event(id="")).encode(), STRUCTURED, 400, "'id'"),
        (json.dumps(event(specversion="0.3")).encode(), STRUCTURED, 400, "specversion"),
        (json.dumps(event(data=1, data_base64="MQ==")).encode(), STRUCTURED, 400, "not both"),
        (json.dumps(event(instanceid="")).encode(), STRUCTURED, 400, "instanceid"),
        (json.dumps(event(type="eddic.child:x")).encode(), STRUCTURED, 400, "eddic."),
        (json.dumps([event(), {"id": 1}]).encode(), BATCH, 400, "event [1]"),
        (
            json.dumps(event(datacontenttype="image/png", data_base64="iVBO")).encode(),
            STRUCTURED,
            415,
            "cannot be stored",
        ),
    ],
)
def test_a_malformed_event_is_a_4xx_with_a_json_error_and_nothing_is_sent(
    eddic_app: App, http: TestClient, body: bytes, content_type: str, status: int, says: str
) -> None:
    iid = eddic_app.start(ingress_payment, input="o-1")

    answer = http.post("/events", content=body, headers={"content-type": content_type})

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert says in answer.json()["error"]
    assert unconsumed(eddic_app, iid) == []


def test_a_batch_with_one_bad_event_sends_none_of_them(eddic_app: App, http: TestClient) -> None:
    iid = eddic_app.start(ingress_payment, input="o-1")

    answer = post(http, [event(id="fine"), event(id="bad", time="now")], BATCH)

    assert answer.status_code == 400
    assert unconsumed(eddic_app, iid) == []


def test_a_binary_body_eddic_cannot_store_is_415(http: TestClient) -> None:
    headers = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": TYPE}

    answer = post(http, b"\x89PNG", "image/png", **headers)

    assert answer.status_code == 415
    assert "image/png" in answer.json()["error"]


def test_a_body_over_max_body_is_413_and_not_sent() -> None:
    sent: list[CloudEvent] = []

    def send(ev: CloudEvent) -> list[str]:
        sent.append(ev)
        return []

    body = json.dumps(event(data="x" * 200)).encode()
    with serve(send, max_body=len(body) - 1) as client:
        declared = post(client, body)
        # no Content-Length (chunked): refused while reading
        streamed = client.post(
            "/events", content=iter([body[:100], body[100:]]), headers={"content-type": STRUCTURED}
        )
        fits = post(client, json.dumps(event()).encode())

    assert declared.status_code == 413 and "over" in declared.json()["error"]
    assert streamed.status_code == 413
    assert fits.status_code == 202
    assert len(sent) == 1


def call_directly(max_body: int, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """The endpoint's status for a body of fifty 60-byte chunks, and how many it pulled."""
    chunks = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 50
    chunks.append({"type": "http.request", "body": b"", "more_body": False})
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return chunks[pulled - 1]

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/events",
        "query_string": b"",
        "headers": [(b"content-type", STRUCTURED.encode()), *headers],
    }
    endpoint = events_endpoint(lambda ev: pytest.fail("nothing to send"), max_body=max_body)
    response = asyncio.run(endpoint(Request(scope, receive)))
    return response.status_code, pulled


def test_reading_stops_as_soon_as_the_body_is_past_max_body() -> None:
    # without Content-Length (chunked): 60 bytes, then 120, past 100, and no further
    assert call_directly(100, []) == (413, 2)
    # a declared Content-Length past the cap: refused before reading anything
    assert call_directly(100, [(b"content-length", b"3000")]) == (413, 0)
    assert call_directly(100, [(b"content-length", b"lots")]) == (400, 0)


@pytest.mark.parametrize(
    ("raised", "status"),
    [
        (ValueError("event id must not be empty"), 400),
        (TypeError("event source must be a string"), 400),
        (InstanceNotFound("no workflow instance with id 'x'"), 404),
        (EddicError("instance 'x' has finished"), 409),
    ],
)
def test_errors_from_send_become_their_status(raised: Exception, status: int) -> None:
    def send(ev: CloudEvent) -> list[str]:
        raise raised

    with serve(send) as client:
        answer = post(client, event())

    assert answer.status_code == status
    assert answer.json() == {"error": f"{type(raised).__name__}: {raised}"}


def test_a_storage_error_is_the_servers_500_not_a_4xx() -> None:
    def send(ev: CloudEvent) -> list[str]:
        raise StorageError("disk I/O error")

    with serve(send) as client:
        answer = post(client, event())

    assert answer.status_code == 500


def test_a_batch_that_fails_part_way_lists_what_was_delivered() -> None:
    def send(ev: CloudEvent) -> list[str]:
        if ev.id == "second":
            raise InstanceNotFound(f"no workflow instance with id {ev.instanceid!r}")
        return ["i-1"]

    batch = [event(id="first"), event(id="second", instanceid="gone"), event(id="third")]
    with serve(send) as client:
        answer = post(client, batch, BATCH)

    assert answer.status_code == 404
    assert answer.json()["events"] == [{"id": "first", "reached": ["i-1"]}]
    assert "event [1] (id 'second')" in answer.json()["error"]


def test_only_post_is_routed(http: TestClient) -> None:
    assert http.get("/events").status_code == 405


def test_max_body_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError):
        events_endpoint(lambda ev: [], max_body=0)
