"""The viewer's pages over HTTP (an ASGI test client, a real App and database on each backend):
what each page shows, that every stored string is escaped, paging and filters."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import viewer_workflows as wf
from starlette.testclient import TestClient

from eddic import App

pytestmark = pytest.mark.both_backends


class _Page(HTMLParser):
    """The parsed page: links, script bodies, element ids, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.ids: set[str] = set()
        self.texts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if values.get("id"):
            self.ids.add(str(values["id"]))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.texts).append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


def _get(client: TestClient, path: str, **params: Any) -> _Page:
    response = client.get(path, params=params) if params else client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    return _Page(response.text)


def _section(html: str, element_id: str) -> str:
    found = re.search(rf'<section class="card" id="{element_id}">(.*?)</section>', html, re.S)
    assert found is not None, f"no section {element_id!r}"
    return found.group(1)


def _order(app: App, order_id: str | None = None) -> str:
    iid = order_id or f"order-{uuid.uuid4().hex[:8]}"
    app.start(wf.view_order, iid, instance_id=iid)
    return iid


def test_the_list_shows_instances_newest_first_with_counts_per_status(
    app: App, client: TestClient
) -> None:
    first, second = _order(app, "order-a"), _order(app, "order-b")
    failed = app.start(wf.view_failing, "order-c", instance_id="order-c")
    page = _get(client, "/")
    ids = [parse_qs(urlsplit(link).query)["id"][0] for link in page.links if "/instance?" in link]
    assert ids == [failed, second, first]
    assert "all 3" in page.text
    assert re.search(r"waiting_for_event 2", page.text)
    assert re.search(r"failed 1", page.text)


def test_the_list_filters_by_status_workflow_and_id_search(app: App, client: TestClient) -> None:
    _order(app, "order-a")
    _order(app, "order-b")
    app.start(wf.view_failing, "order-c", instance_id="order-c")
    app.start(wf.view_publisher, "pub-1", instance_id="pub-1")

    def listed(**params: Any) -> list[str]:
        page = _get(client, "/", **params)
        return [
            parse_qs(urlsplit(link).query)["id"][0] for link in page.links if "/instance?" in link
        ]

    assert listed(status="failed") == ["order-c"]
    assert listed(workflow="view_order") == ["order-b", "order-a"]
    assert listed(q="der-") == ["order-c", "order-b", "order-a"]
    assert listed(q="pub") == ["pub-1"]
    assert listed(q="%") == []  # a literal percent sign, not a wildcard
    assert client.get("/", params={"status": "bogus"}).status_code == 400


def test_the_list_pages_with_cursors_both_ways(app: App, client: TestClient) -> None:
    made = [_order(app, f"order-{n:02d}") for n in range(57)]
    newest_first = list(reversed(made))
    page = _get(client, "/")
    on_first = [parse_qs(urlsplit(a).query)["id"][0] for a in page.links if "/instance?" in a]
    assert on_first == newest_first[:50]
    older = next(link for link in page.links if "before=" in link)
    page2 = _get(client, older)
    on_second = [parse_qs(urlsplit(a).query)["id"][0] for a in page2.links if "/instance?" in a]
    assert on_second == newest_first[50:]
    assert not any("before=" in link for link in page2.links)  # the last page
    newer = next(link for link in page2.links if "after=" in link)
    back = _get(client, newer)
    assert [parse_qs(urlsplit(a).query)["id"][0] for a in back.links if "/instance?" in a] == (
        newest_first[:50]
    )


def test_an_instance_page_shows_its_state_now_timeline_and_history(
    app: App, client: TestClient
) -> None:
    iid = _order(app)
    html = client.get("/instance", params={"id": iid}).text
    page = _Page(html)
    text = page.text
    assert "waiting_for_event" in text
    assert "awaiting payment" in text  # the custom status
    # computed by the kernel: the event it waits on, the compensations in the order they'd run
    now = _Page(_section(html, "now")).text
    assert "event payment.confirmed" in now
    assert now.index("view_refund") < now.index("view_release")
    assert {"timeline", "history", "now", "actions", "input"} <= page.ids
    assert "activity view_reserve" in text and "activity view_charge" in text
    assert "records 1–" in text


def test_an_instance_page_without_its_code_says_what_it_cannot_compute(
    app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = _order(app)
    from eddic import decorators

    registry = dict(decorators._WORKFLOWS)
    registry.pop("view_order")
    monkeypatch.setattr(decorators, "_WORKFLOWS", registry)
    page = _get(client, "/instance", id=iid)
    assert "is not loaded here" in page.text
    replay = _get(client, "/replay", id=iid)
    assert "--import MODULE" in replay.text


def test_a_failed_instance_shows_its_error_escaped(app: App, client: TestClient) -> None:
    app.start(wf.view_failing, "order-x", instance_id="order-x")
    response = client.get("/instance", params={"id": "order-x"})
    assert response.status_code == 200
    assert "carrier down for &lt;b&gt;order-x&lt;/b&gt;" in response.text
    assert "<b>order-x</b>" not in response.text


def test_hostile_ids_and_strings_are_escaped_everywhere(app: App, client: TestClient) -> None:
    iid = wf.HOSTILE_ID
    app.start(wf.view_order, iid, instance_id=iid)
    for path in ("/", "/instance", "/replay"):
        response = client.get(path, params={"id": iid} if path != "/" else {})
        assert response.status_code == 200, (path, response.text[:300])
        body = response.text
        assert "<script>alert" not in body
        assert "\x1b" not in body and "\u202e" not in body
        page = _Page(body)
        assert all("alert" not in s for s in page.scripts), path
        assert "\\x1b[31m" in page.text and "\\u202e" in page.text
    # the link to it carries the whole id, percent-encoded, and leads back to it
    listing = _Page(client.get("/").text)
    link = next(a for a in listing.links if "/instance?" in a)
    assert parse_qs(urlsplit(link).query)["id"] == [iid]
    assert client.get(link).status_code == 200


def test_an_unknown_instance_is_a_404_page(client: TestClient) -> None:
    response = client.get("/instance", params={"id": "<nope>"})
    assert response.status_code == 404
    assert "&lt;nope&gt;" in response.text
    assert client.get("/instance").status_code == 400
    assert client.get("/replay", params={"id": "nope"}).status_code == 404


def test_the_replay_steps_through_values_and_locals(app: App, client: TestClient) -> None:
    iid = _order(app)
    page = _get(client, "/replay", id=iid)
    assert "step 3 of 3" in page.text  # the last step by default: the event it waits on
    assert "pending" in page.text
    first = _get(client, "/replay", id=iid, step=1)
    assert "seq 1 activity view_reserve" in first.text
    assert "R-" + iid in first.text  # the value sent in at that yield
    second = _get(client, "/replay", id=iid, step=2)
    # the locals where the code stood: the reservation received, the long note truncated
    assert "reservation" in second.text and "note" in second.text
    assert "x" * 500 not in second.text
    assert any("step=1" in link for link in second.links)
    assert any("step=3" in link for link in second.links)


def test_the_outbox_and_mailbox_rows_of_an_instance(app: App, client: TestClient) -> None:
    app.outbox_max_attempts = 1

    def refuse(event: Any) -> None:
        raise RuntimeError("sink <down>")

    app.outbox_sink = refuse
    app.start(wf.view_publisher, "pub-1", instance_id="pub-1")
    app.relay_outbox()
    iid = _order(app)
    app.send_event("payment.other", {"n": 1}, instance_id=iid, id="ev-1")
    page = client.get("/instance", params={"id": "pub-1"}).text
    assert "order.placed" in page and "sink &lt;down&gt;" in page
    parsed = _Page(page)
    assert "outbox" in parsed.ids
    mailbox = _Page(client.get("/instance", params={"id": iid}).text)
    assert "mailbox" in mailbox.ids
    assert "payment.other" in mailbox.text and "ev-1" in mailbox.text


def test_children_link_to_their_parent_and_back(app: App, client: TestClient) -> None:
    app.start(wf.view_parent, "p-1", instance_id="p-1")
    page = _Page(client.get("/instance", params={"id": "p-1"}).text)
    assert "children" in page.ids
    child_links = [a for a in page.links if parse_qs(urlsplit(a).query).get("id") == ["p-1-child"]]
    assert child_links
    child = _Page(client.get(child_links[0]).text)
    assert any(parse_qs(urlsplit(a).query).get("id") == ["p-1"] for a in child.links)


def test_a_page_viewed_again_after_a_step_shows_the_step(app: App, client: TestClient) -> None:
    iid = _order(app)
    before = client.get("/instance", params={"id": iid}).text
    assert "payment.confirmed" in _Page(_section(before, "now")).text
    app.send_event("payment.confirmed", {"paid": 1}, instance_id=iid)  # runs it here, inline
    after = client.get("/instance", params={"id": iid}).text
    assert "it waits on nothing" in _Page(_section(after, "now")).text
    assert "event payment.confirmed · received" in _Page(after).text


def test_each_run_of_a_workflow_that_continued_as_new_has_its_page(
    app: App, client: TestClient
) -> None:
    app.start(wf.view_rounds, 2, instance_id="rounds")
    page = _Page(client.get("/instance", params={"id": "rounds"}).text)
    assert "run 3" in page.text
    runs = [a for a in page.links if "run=" in a]
    assert [parse_qs(urlsplit(a).query)["run"] for a in runs] == [["1"], ["2"]]
    first = client.get(runs[0]).text
    assert "round-2" in first and "round-1" not in first  # run 1's history only
    assert "run 1 ended: it waits on nothing" in first
    assert "rounds.done" in _Page(_section(client.get("/instance?id=rounds").text, "now")).text
