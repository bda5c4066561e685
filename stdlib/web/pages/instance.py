"""One instance: its state, what it waits on now and would compensate, its timeline, history,
children and runs, outbox and mailbox, and the actions that apply to it."""

from __future__ import annotations

from typing import Any

from ...clock import utcnow
from ...debug.timeline import FINISHED
from ..html import Html, json_text, lines, tag, text, timestamp, url
from ..viewer import HISTORY_PAGE, InstanceView
from .layout import Chrome, badge, field, form, instance_link, kv_table, page, pre, section, table
from .timeline import render_timeline

__all__ = ["render_instance"]


def _summary(view: InstanceView) -> Html:
    info = view.info
    pairs: list[tuple[str, Any]] = [
        ("status", badge(info["status"])),
        ("workflow", info["workflow_name"]),
        ("created", timestamp(info["created_at"])),
        ("updated", timestamp(info["updated_at"])),
    ]
    if info.get("parent_id"):
        pairs.append(("parent", instance_link(info["parent_id"])))
    if int(info.get("run") or 1) > 1 or view.run != int(info.get("run") or 1):
        runs = [
            tag("strong", f"run {n}")
            if n == view.run
            else tag("a", f"run {n}", href=url("/instance", id=info["instance_id"], run=n))
            for n in range(1, int(info.get("run") or 1) + 1)
        ]
        pairs.append(("runs (continue-as-new)", Html(" · ".join(runs))))
    if info.get("wake_at") is not None and info["status"] not in FINISHED:
        pairs.append(("wakes", timestamp(info["wake_at"])))
    if info.get("lock_owner"):
        until = timestamp(info.get("lock_expires_at"))
        pairs.append(("held by", Html(text(info["lock_owner"]) + " until " + until)))
    if info.get("cancel_requested"):
        pairs.append(("cancel asked", text(info.get("cancel_reason") or "(no reason given)")))
    if info.get("custom_status") is not None:
        pairs.append(("custom status", pre(json_text(info["custom_status"]))))
    return kv_table(pairs)


def _values(view: InstanceView) -> Html:
    info = view.info
    blocks = [section("input", pre(json_text(info.get("input_data"))), id="input")]
    if info["status"] == "completed":
        blocks.append(section("output", pre(json_text(info.get("output_data"))), id="output"))
    error = info.get("error")
    if isinstance(error, dict):
        known = ("type", "message", "traceback")
        head = f"{error.get('type', '?')}: {error.get('message', '')}"
        rest = {k: v for k, v in error.items() if k not in known}
        parts = [pre(lines(head, 2_000))]
        if rest:
            parts.append(pre(json_text(rest, 2_000)))
        if error.get("traceback"):
            parts.append(
                tag("details", tag("summary", "traceback"), pre(lines(error["traceback"], 8_000)))
            )
        blocks.append(section("error", *parts, id="error"))
    elif error is not None:
        blocks.append(section("error", pre(json_text(error, 8_000)), id="error"))
    return tag("div", *blocks, class_="grid")


def _parked(view: InstanceView, chrome: Chrome) -> Html | None:
    info = view.info
    if info.get("retry_after") is None or info["status"] in FINISHED:
        return None
    retry = form(chrome, "/actions/retry", {"id": info["instance_id"]}, button="retry now")
    return section(
        "parked",
        tag(
            "p",
            "A step of this instance failed outside the workflow's code; it is retried from ",
            timestamp(info["retry_after"]),
            ".",
        ),
        retry,
        id="parked",
    )


def _outlook(view: InstanceView) -> Html:
    o = view.outlook
    if o.why_not is not None:
        return section("now", tag("p", o.why_not, class_="muted"), id="now")

    def described(items: list[dict[str, Any]]) -> list[list[Any]]:
        return [
            [
                str(c.get("seq") or "-"),
                c.get("kind", ""),
                c.get("name", ""),
                tag("td", tag("code", text(c.get("args", ""), 200))),
            ]
            for c in items
        ]

    waiting = table(["seq", "kind", "name", "args"], described(o.waiting), empty="nothing")
    undo = table(
        ["#", "kind", "name", "args"],
        [[str(i + 1), *row[1:]] for i, row in enumerate(described(o.compensations))],
        empty="nothing: no compensable activity has completed",
    )
    return section(
        "now (computed by the kernel from the history)",
        tag("h2", "waits on"),
        waiting,
        tag("h2", "a failure now would run these compensations, in this order"),
        undo,
        id="now",
    )


def _actions(view: InstanceView, chrome: Chrome) -> Html | None:
    info = view.info
    if chrome.read_only or info["status"] in FINISHED:  # nothing to cancel, no event taken
        return None
    iid = info["instance_id"]
    cancel = form(
        chrome,
        "/actions/cancel",
        {"id": iid},
        field("reason", "reason"),
        button="cancel instance",
        danger=True,
    )
    event = form(
        chrome,
        "/actions/event",
        {"instance_id": iid},
        field("type", "event type"),
        field("data", "data (JSON)", size=30),
        field("event_id", "event id (optional)", size=18),
        button="send event to this instance",
    )
    return section("actions", cancel, event, id="actions")


def _history(view: InstanceView) -> Html:
    iid, start = view.info["instance_id"], view.history_from
    rows = []
    for rec in view.history:
        outcome = rec.get("failure") if rec.get("failure") is not None else rec.get("value")
        rows.append(
            [
                str(rec.get("pos", "")),
                str(rec["seq"]),
                rec["record"],
                rec.get("kind") or "",
                rec.get("name") or "",
                tag("td", timestamp(rec.get("at"))),
                tag("td", tag("code", json_text(rec.get("args"), 160, compact=True))),
                tag("td", tag("code", json_text(outcome, 160, compact=True))),
            ]
        )
    pager = []
    if start > 0:
        pager.append(
            tag(
                "a",
                "← earlier",
                href=url("/instance", id=iid, run=view.run, hfrom=max(start - HISTORY_PAGE, 0)),
            )
        )
    end = start + len(view.history)
    pager.append(
        tag(
            "span",
            f"records {start + 1}–{end} of {view.history_total}"
            if view.history_total
            else "no records",
            class_="muted",
        )
    )
    if end < view.history_total:
        pager.append(tag("a", "later →", href=url("/instance", id=iid, run=view.run, hfrom=end)))
    headers = ["pos", "seq", "record", "kind", "name", "at", "args", "value / failure"]
    return section(
        "history", table(headers, rows), tag("div", *pager, class_="pager"), id="history"
    )


def _children(view: InstanceView) -> Html | None:
    if not view.children:
        return None
    rows = [
        [
            tag("td", instance_link(c["instance_id"]), class_="id"),
            c["workflow_name"],
            tag("td", badge(c["status"])),
            tag("td", timestamp(c["created_at"])),
        ]
        for c in view.children
    ]
    return section(
        "children", table(["instance", "workflow", "status", "created"], rows), id="children"
    )


def _outbox(view: InstanceView, chrome: Chrome) -> Html | None:
    if not view.outbox:
        return None
    iid = view.info["instance_id"]
    rows = []
    for r in view.outbox:
        buttons: list[Any] = []
        if r["status"] == "failed":
            fields = {"event_id": r["event_id"], "instance_id": iid}
            buttons = [
                form(chrome, "/actions/outbox-retry", fields, button="retry"),
                form(chrome, "/actions/outbox-discard", fields, button="discard", danger=True),
            ]
        rows.append(
            [
                tag("td", r["event_id"], class_="id"),
                str(r["seq"]),
                r["event_type"],
                tag("td", badge(r["status"])),
                str(r["attempts"]),
                text(r.get("last_error") or "", 200),
                tag("td", *buttons),
            ]
        )
    return section(
        "outbox",
        table(["event id", "seq", "type", "status", "attempts", "last error", ""], rows),
        id="outbox",
    )


def _mailbox(view: InstanceView) -> Html | None:
    if not view.mailbox:
        return None
    rows = [
        [
            r["event_type"],
            tag("td", r["event_id"], class_="id"),
            r.get("source") or "",
            tag("td", timestamp(r.get("time"))),
            "pending" if r.get("consumed_seq") is None else f"consumed at seq {r['consumed_seq']}",
            tag("td", tag("code", json_text(r.get("data"), 200, compact=True))),
        ]
        for r in view.mailbox
    ]
    return section(
        "mailbox",
        table(["type", "event id", "source", "time", "state", "data"], rows),
        id="mailbox",
    )


def render_instance(view: InstanceView, chrome: Chrome) -> Html:
    info = view.info
    until = utcnow() if info["status"] not in FINISHED else info["updated_at"]
    live = tag("div", Html('<label><input type="checkbox" id="live"> live refresh</label>'))
    body = tag(
        "div",
        section("instance", _summary(view), id="summary"),
        _parked(view, chrome),
        _actions(view, chrome),
        _outlook(view),
        section(
            "timeline",
            render_timeline(view.entries, until),
            tag(
                "p", tag("a", "replay step by step →", href=url("/replay", id=info["instance_id"]))
            ),
            id="timeline-card",
        ),
        _values(view),
        _children(view),
        _outbox(view, chrome),
        _mailbox(view),
        _history(view),
        data_live=True,
    )
    return page(info["instance_id"], chrome, tag("h1", info["instance_id"]), live, body)
