"""Who may read and change what the viewer shows: read-only, the token, cross-site requests,
Host names other than loopback, and the headers that keep a page from running foreign script."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import viewer_workflows as wf
from starlette.testclient import TestClient

from eddic import App
from eddic.cli import main
from eddic.web import create_app

BASE = "http://127.0.0.1:8765"


@pytest.fixture
def order(app: App) -> str:
    return app.start(wf.view_order, "order-1", instance_id="order-1")


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "no form on the page"
    return found.group(1)


@pytest.fixture
def read_only(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app.storage.db_url, read_only=True), base_url=BASE) as client:
        yield client


@pytest.fixture
def with_token(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app.storage.db_url, token="s3cret"), base_url=BASE) as client:
        yield client


def test_a_read_only_viewer_shows_no_form_and_refuses_every_change(
    app: App, read_only: TestClient, client: TestClient, order: str
) -> None:
    page = read_only.get("/instance", params={"id": order}).text
    assert "<form" not in page.split("</header>")[1].replace('method="get"', "")  # filters only
    assert "read-only" in page
    csrf = _csrf(client.get("/instance", params={"id": order}).text)
    for action, form in [
        ("cancel", {"id": order}),
        ("event", {"instance_id": order, "type": "payment.confirmed"}),
        ("retry", {"id": order}),
        ("outbox-discard", {"event_id": "x"}),
    ]:
        response = read_only.post(f"/actions/{action}", data={**form, "csrf": csrf})
        assert response.status_code == 403 and "read-only" in response.text
    events = read_only.post(
        "/events",
        json={"specversion": "1.0", "id": "e1", "source": "t", "type": "payment.confirmed"},
        headers={"content-type": "application/cloudevents+json"},
    )
    assert events.status_code == 403
    app.run_due()
    assert app.get_instance(order)["status"] == "waiting_for_event"
    assert not app.get_instance(order)["cancel_requested"]


def test_a_form_without_the_csrf_value_or_from_another_site_is_refused(
    app: App, client: TestClient, order: str
) -> None:
    csrf = _csrf(client.get("/instance", params={"id": order}).text)
    missing = client.post("/actions/cancel", data={"id": order})
    assert missing.status_code == 403 and "csrf" in missing.text
    wrong = client.post("/actions/cancel", data={"id": order, "csrf": csrf + "x"})
    assert wrong.status_code == 403
    evil = client.post(
        "/actions/cancel", data={"id": order, "csrf": csrf}, headers={"origin": "http://evil.test"}
    )
    assert evil.status_code == 403 and "evil.test" in evil.text
    cross = {"sec-fetch-site": "cross-site"}
    fetched = client.post("/actions/cancel", data={"id": order, "csrf": csrf}, headers=cross)
    assert fetched.status_code == 403
    assert not app.get_instance(order)["cancel_requested"]
    same = client.post(
        "/actions/cancel",
        data={"id": order, "csrf": csrf},
        headers={"origin": BASE, "sec-fetch-site": "same-origin"},
        follow_redirects=False,
    )
    assert same.status_code == 303
    assert app.get_instance(order)["cancel_requested"]


def test_actions_take_only_small_url_encoded_forms(client: TestClient, order: str) -> None:
    csrf = _csrf(client.get("/instance", params={"id": order}).text)
    as_json = client.post("/actions/cancel", json={"id": order, "csrf": csrf})
    assert as_json.status_code == 415
    huge = client.post("/actions/cancel", data={"id": order, "csrf": csrf, "reason": "x" * 70_000})
    assert huge.status_code == 413


def test_without_a_token_only_loopback_host_names_are_answered(app: App, order: str) -> None:
    viewer = create_app(app.storage.db_url)
    with TestClient(viewer, base_url="http://attacker.test") as rebound:
        response = rebound.get("/")
        assert response.status_code == 403 and "not loopback" in response.text
    for base in ("http://localhost:8765", "http://[::1]:8765", "http://127.0.0.1"):
        with TestClient(create_app(app.storage.db_url), base_url=base) as local:
            assert local.get("/").status_code == 200, base
    with TestClient(
        create_app(app.storage.db_url, allowed_hosts=["viewer.internal"]),
        base_url="http://viewer.internal",
    ) as named:
        assert named.get("/").status_code == 200


def test_a_token_guards_reading_and_changing(app: App, with_token: TestClient, order: str) -> None:
    client = with_token
    assert client.get("/", follow_redirects=False).status_code == 303  # to /login
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.get("/instance", params={"id": order}, follow_redirects=False).status_code == 303
    bearer = {"authorization": "Bearer s3cret"}
    assert client.get("/", headers=bearer).status_code == 200
    nope = client.get("/", headers={"authorization": "Bearer nope"}, follow_redirects=False)
    assert nope.status_code == 303
    wrong = client.post("/login", data={"token": "nope"})
    assert wrong.status_code == 401
    assert "eddic_session" not in client.cookies
    right = client.post("/login", data={"token": "s3cret"}, follow_redirects=False)
    assert right.status_code == 303
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "s3cret" not in cookie
    page = client.get("/instance", params={"id": order})
    assert page.status_code == 200
    done = client.post(
        "/actions/cancel", data={"id": order, "csrf": _csrf(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303


def test_a_post_without_the_token_changes_nothing(app: App, order: str) -> None:
    viewer = create_app(app.storage.db_url, token="s3cret")
    with TestClient(viewer, base_url=BASE) as client:
        bearer = {"authorization": "Bearer s3cret"}
        page = client.get("/instance", params={"id": order}, headers=bearer)
        response = client.post("/actions/cancel", data={"id": order, "csrf": _csrf(page.text)})
        assert response.status_code == 401
        events = client.post(
            "/events",
            json={"specversion": "1.0", "id": "e1", "source": "t", "type": "payment.confirmed"},
            headers={"content-type": "application/cloudevents+json"},
        )
        assert events.status_code == 401
    assert not app.get_instance(order)["cancel_requested"]
    assert app.storage.mailbox_rows(order) == []


def test_pages_forbid_foreign_script_frames_and_sniffing(client: TestClient) -> None:
    response = client.get("/")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'sha256-" in csp and "unsafe-inline" not in csp.split("script-src")[1]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_eddic_ui_refuses_a_public_address_without_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], app: App
) -> None:
    code = main(["--db", app.storage.db_url, "ui", "--host", "0.0.0.0"])
    assert code == 2
    assert "needs a token" in capsys.readouterr().err


def test_eddic_ui_names_a_missing_database(tmp_path: Path, capsys: Any) -> None:
    code = main(["--db", str(tmp_path / "missing.db"), "ui"])
    assert code == 2
    err = capsys.readouterr().err
    assert "missing.db" in err
    assert not (tmp_path / "missing.db").exists()
