"""The viewer's actions over HTTP, each a plain form post: cancel, send an event, retry a parked
instance, retry or discard a failed outbox row. Each is recorded durably and left to a worker
(here ``app.run_due()``), and each says what it did on the page it redirects to."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import viewer_workflows as wf
from starlette.testclient import TestClient

from eddic import App

pytestmark = pytest.mark.both_backends


def csrf_of(client: TestClient) -> str:
    """The value the viewer writes into its forms (read off an instance page)."""
    found = re.search(r'name="csrf" value="([^"]+)"', _any_form_page(client))
    assert found is not None
    return found.group(1)


def _any_form_page(client: TestClient) -> str:
    """An instance page with forms on it: an unfinished instance's."""
    for iid in re.findall(r'href="/instance\?id=([^"&]+)"', client.get("/").text):
        page = client.get(f"/instance?id={iid}").text
        if 'name="csrf"' in page:
            return page
    raise AssertionError("no unfinished instance to read a form from")


def post(client: TestClient, action: str, **form: str) -> Any:
    return client.post(f"/actions/{action}", data=form, follow_redirects=False)


@pytest.fixture
def order(app: App) -> Iterator[str]:
    iid = app.start(wf.view_order, "order-1", instance_id="order-1")
    yield iid


def _flash(client: TestClient, response: Any) -> str:
    assert response.status_code == 303, response.text[:400]
    page = client.get(response.headers["location"]).text
    found = re.search(r'<div class="flash[^"]*" role="status">(.*?)</div>', page, re.S)
    assert found is not None
    return found.group(1)


def test_cancel_is_recorded_and_a_worker_throws_it_in(
    app: App, client: TestClient, order: str
) -> None:
    response = post(client, "cancel", id=order, reason="customer asked", csrf=csrf_of(client))
    assert "cancel of order-1 recorded" in _flash(client, response)
    info = app.get_instance(order)
    assert info["cancel_requested"] and info["status"] == "waiting_for_event"  # not run here
    app.run_due()
    info = app.get_instance(order)
    assert info["status"] == "cancelled"
    page = client.get("/instance", params={"id": order}).text
    assert "customer asked" in page
    assert 'action="/actions/cancel"' not in page  # nothing left to cancel


def test_an_event_sent_from_the_page_reaches_the_instance(
    app: App, client: TestClient, order: str
) -> None:
    response = post(
        client,
        "event",
        instance_id=order,
        type="payment.confirmed",
        data='{"paid": 42}',
        event_id="pay-1",
        csrf=csrf_of(client),
    )
    assert "reached 1 instance(s): order-1" in _flash(client, response)
    assert app.get_instance(order)["status"] == "waiting_for_event"  # delivered, not run here
    app.run_due()
    assert app.get_instance(order)["status"] == "completed"
    assert app.result(order).startswith("R-order-1:{'paid': 42}")


def test_an_event_with_bad_data_is_refused_and_nothing_is_stored(
    app: App, client: TestClient, order: str
) -> None:
    token = csrf_of(client)
    bad = post(client, "event", instance_id=order, type="payment.confirmed", data="{", csrf=token)
    assert bad.status_code == 400 and "not JSON" in bad.text
    reserved = post(client, "event", instance_id=order, type="eddic.child", data="", csrf=token)
    assert reserved.status_code == 400
    missing = post(client, "event", instance_id=order, data="1", csrf=token)
    assert missing.status_code == 400 and "the form has no &#x27;type&#x27;" in missing.text
    app.run_due()
    assert app.get_instance(order)["status"] == "waiting_for_event"


def test_retry_makes_a_parked_instance_due_now(app: App, client: TestClient) -> None:
    wf.poison["on"] = True
    try:
        iid = app.start(wf.view_parks, "p-1", instance_id="p-1")
    finally:
        wf.poison["on"] = False
    info = app.get_instance(iid)
    assert info["retry_after"] is not None and info["error"]["type"].endswith("Halt")
    page = client.get("/instance", params={"id": iid}).text
    assert 'id="parked"' in page and 'action="/actions/retry"' in page
    response = post(client, "retry", id=iid, csrf=csrf_of(client))
    assert "due now" in _flash(client, response)
    assert app.get_instance(iid)["retry_after"] is None
    app.run_due(recover=False)  # due now: no recovery interval to wait
    assert app.get_instance(iid)["status"] == "completed"


def test_retry_of_a_finished_or_unknown_instance(app: App, client: TestClient, order: str) -> None:
    app.start(wf.view_failing, "f-1", instance_id="f-1")
    token = csrf_of(client)
    assert "already failed" in _flash(client, post(client, "retry", id="f-1", csrf=token))
    assert post(client, "retry", id="nope", csrf=token).status_code == 404


def test_failed_outbox_rows_are_retried_and_discarded(app: App, client: TestClient) -> None:
    app.outbox_max_attempts = 1
    sent: list[str] = []

    def flaky(event: Any) -> None:
        if not sent:
            sent.append("refused")
            raise RuntimeError("sink down")
        sent.append(event.type if hasattr(event, "type") else str(event))

    app.outbox_sink = flaky
    app.start(wf.view_publisher, "pub-1", instance_id="pub-1")
    app.start(wf.view_publisher, "pub-2", instance_id="pub-2")
    app.relay_outbox()
    failed = [r for r in app.storage.outbox.rows(["failed"])]
    assert len(failed) == 1
    event_id = failed[0]["event_id"]
    token = csrf_of(client)
    page = client.get("/instance", params={"id": failed[0]["instance_id"]}).text
    assert 'action="/actions/outbox-retry"' in page
    response = post(client, "outbox-retry", event_id=event_id, csrf=token)
    assert "pending again" in _flash(client, response)
    assert [r["status"] for r in app.storage.outbox.rows(None) if r["event_id"] == event_id] == [
        "pending"
    ]
    app.relay_outbox()
    assert app.storage.outbox.rows(["failed", "pending"]) == []
    again = post(client, "outbox-discard", event_id=event_id, csrf=token)
    assert "no failed outbox row" in _flash(client, again)  # it was sent: nothing to discard


def test_a_failed_outbox_row_can_be_discarded(app: App, client: TestClient) -> None:
    app.outbox_max_attempts = 1

    def refuse(event: Any) -> None:
        raise RuntimeError("sink down")

    app.outbox_sink = refuse
    app.start(wf.view_publisher, "pub-1", instance_id="pub-1")
    app.relay_outbox()
    (row,) = app.storage.outbox.rows(["failed"])
    response = post(client, "outbox-discard", event_id=row["event_id"], csrf=csrf_of(client))
    assert "discarded" in _flash(client, response)
    assert [r["status"] for r in app.storage.outbox.rows(None)] == ["discarded"]
