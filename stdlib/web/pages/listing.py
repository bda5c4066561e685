"""The instance list: newest first, counts per status, filters, id search, cursor paging."""

from __future__ import annotations

from typing import Any

from ..html import Html, tag, text, timestamp, url
from ..viewer import STATUSES, ListPage
from .layout import Chrome, badge, instance_link, page, section, table

__all__ = ["render_list"]


def _query(page_: ListPage, **changes: Any) -> dict[str, Any]:
    q = page_.query
    values: dict[str, Any] = {"status": q.status, "workflow": q.workflow, "q": q.search}
    values.update(changes)
    return values


def _chips(page_: ListPage) -> Html:
    q = page_.query
    total = sum(page_.counts.values())
    chips = [
        tag(
            "a",
            f"all {total}",
            href=url("/", **_query(page_, status=None)),
            class_="on" if q.status is None else None,
        )
    ]
    for status in STATUSES:
        count = page_.counts.get(status, 0)
        if count or status == q.status:
            chips.append(
                tag(
                    "a",
                    badge(status),
                    f" {count}",
                    href=url("/", **_query(page_, status=status)),
                    class_="on" if q.status == status else None,
                    data_status=status,
                )
            )
    for status, count in sorted(page_.counts.items()):  # a status this viewer does not know
        if status not in STATUSES:
            chips.append(tag("span", badge(status), f" {count}"))
    return tag("div", *chips, class_="chips", id="counts")


def _filters(page_: ListPage) -> Html:
    q = page_.query
    options = [tag("option", "all workflows", value="")]
    options += [
        tag("option", name, value=name, selected=name == q.workflow) for name in page_.workflows
    ]
    status = (
        Html(f'<input type="hidden" name="status" value="{text(q.status)}">') if q.status else None
    )
    return tag(
        "form",
        status,
        tag("select", *options, name="workflow", aria_label="workflow"),
        Html(
            f'<input type="search" name="q" value="{text(q.search or "")}" '
            'placeholder="instance id contains…" aria-label="search ids" size="32">'
        ),
        tag("button", "filter", type="submit"),
        Html(' <label><input type="checkbox" id="live"> live refresh</label>'),
        method="get",
        action="/",
        class_="inline",
        id="filters",
    )


def _rows(page_: ListPage) -> list[list[Any]]:
    rows = []
    for info in page_.instances:
        state = info["status"]
        marks = [badge(state)]
        if info.get("retry_after") is not None and state not in ("completed", "failed"):
            marks.append(badge("parked"))
        if info.get("cancel_requested") and state != "cancelled":
            marks.append(badge("cancelled", "cancel asked"))
        custom = info.get("custom_status")
        rows.append(
            [
                tag("td", instance_link(info["instance_id"]), class_="id"),
                info["workflow_name"],
                tag("td", *marks),
                tag("td", text("" if custom is None else custom, 80)),
                tag("td", timestamp(info["created_at"])),
                tag("td", timestamp(info["updated_at"])),
            ]
        )
    return rows


def _pager(page_: ListPage) -> Html:
    links = []
    if page_.newer is not None:
        links.append(
            tag("a", "← newer", href=url("/", **_query(page_, after=page_.newer)), rel="prev")
        )
    links.append(tag("span", f"{page_.total} matching", class_="muted"))
    if page_.older is not None:
        links.append(
            tag("a", "older →", href=url("/", **_query(page_, before=page_.older)), rel="next")
        )
    return tag("div", *links, class_="pager")


def render_list(page_: ListPage, chrome: Chrome) -> Html:
    headers = ["instance", "workflow", "status", "custom status", "created", "updated"]
    empty = "no instance matches" if page_.query.search or page_.query.workflow else "no instances"
    body = tag(
        "div",
        _chips(page_),
        table(headers, _rows(page_), empty=empty),
        _pager(page_),
        data_live=True,
        id="instances",
    )
    return page("instances", chrome, tag("h1", "Instances"), section("", _filters(page_), body))
