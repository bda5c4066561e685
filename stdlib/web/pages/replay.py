"""A replay, one step at a time: the command, what was sent into the workflow at that yield, the
workflow's local variables there, and the divergence report when the code no longer matches."""

from __future__ import annotations

from typing import Any

from ...debug.replay import Step
from ...debug.values import render
from ..html import Html, tag, text, timestamp, url
from ..viewer import ReplayView
from .layout import Chrome, badge, instance_link, kv_table, page, pre, section, table

__all__ = ["render_replay"]

WINDOW = 25  # steps listed either side of the one shown


def _sent(step: Step) -> Html:
    if step.state == "completed":
        return pre(text(render(step.value, limit=2_000)))
    if step.state == "failed" and step.error is not None:
        return pre(text(f"{type(step.error).__name__}: {step.error}", 2_000))
    return tag("span", f"nothing ({step.state})", class_="muted")


def _frames(step: Step) -> Html:
    if not step.frames:
        return tag("p", "no frame: the code was not suspended at this step", class_="muted")
    parts = []
    for frame in step.frames:
        head = tag(
            "p",
            tag("code", f"{frame.function}()"),
            " at ",
            tag("code", f"{frame.filename}:{frame.lineno}"),
            class_="muted",
        )
        rows = [
            [tag("td", tag("code", name)), tag("td", tag("code", value))]
            for name, value in frame.locals
        ]
        parts.append(
            tag("div", head, table(["name", "value"], rows, empty="no locals"), class_="frame")
        )
    return tag("div", *parts, id="locals")


def _detail(step: Step, index: int, total: int, iid: str) -> Html:
    nav = []
    if index > 1:
        nav.append(
            tag(
                "a",
                "← previous step",
                href=url("/replay", id=iid, step=index - 1),
                rel="prev",
                id="prev-step",
            )
        )
    nav.append(tag("span", f"step {index} of {total}", class_="muted"))
    if index < total:
        nav.append(
            tag(
                "a",
                "next step →",
                href=url("/replay", id=iid, step=index + 1),
                rel="next",
                id="next-step",
            )
        )
    pairs: list[tuple[str, Any]] = [
        ("seq", str(step.seq)),
        ("command", f"{step.kind} {step.name}"),
        ("state", badge(step.state)),
        ("scheduled", timestamp(step.at)),
    ]
    if step.record is not None:
        pairs.append(("args", tag("code", text(render(step.record.args, limit=400)))))
    return section(
        f"step {index}: seq {step.seq} {step.kind} {step.name}",
        tag("div", *nav, class_="pager"),
        kv_table(pairs),
        tag("h2", "sent into the workflow at this yield"),
        _sent(step),
        tag("h2", "local variables at this yield"),
        _frames(step),
        id="step",
    )


def _divergence(view: ReplayView) -> Html | None:
    replay = view.replay
    if replay is None or replay.divergence is None:
        return None
    d = replay.divergence
    return section(
        "divergence",
        tag("p", d.message),
        kv_table(
            [
                ("seq", str(d.seq)),
                ("history recorded", d.recorded_text),
                ("the code now", d.now_text),
            ]
        ),
        id="divergence",
    )


def _end(view: ReplayView) -> Html:
    replay = view.replay
    assert replay is not None
    if replay.divergence is not None:
        return tag("p", "the replay stopped at the divergence", class_="muted")
    if replay.waiting:
        waits = ", ".join(f"{w.get('kind')} {w.get('name')}" for w in replay.waiting)
        return tag("p", f"the code replays every step and now waits on {waits}", id="replay-end")
    phase = replay.phase.value if replay.phase is not None else "?"
    return tag("p", f"the code replays every step and ends {phase}", id="replay-end")


def render_replay(view: ReplayView, chrome: Chrome, index: int | None) -> Html:
    iid = view.info["instance_id"]
    title = tag("h1", "replay of ", instance_link(iid))
    if view.replay is None:
        return page(
            f"replay {iid}",
            chrome,
            title,
            section("no replay", tag("p", view.why_not or "", class_="muted")),
        )
    steps, total = view.steps, len(view.steps)
    if total == 0:
        return page(
            f"replay {iid}",
            chrome,
            title,
            _divergence(view),
            section("steps", tag("p", "no command yet", class_="muted")),
            _end(view),
        )
    index = total if index is None else max(1, min(index, total))
    low, high = max(1, index - WINDOW), min(total, index + WINDOW)
    rows = []
    for i in range(low, high + 1):
        s = steps[i - 1]
        rows.append(
            tag(
                "tr",
                tag("td", tag("a", str(i), href=url("/replay", id=iid, step=i))),
                tag("td", str(s.seq)),
                tag("td", f"{s.kind} {s.name}"),
                tag("td", badge(s.state)),
                tag(
                    "td",
                    tag(
                        "code",
                        text(
                            render(s.value, limit=120) if s.state == "completed" else s.error or "",
                            120,
                        ),
                    ),
                ),
                class_="current" if i == index else None,
            )
        )
    listing = tag(
        "table",
        tag(
            "thead", tag("tr", *(tag("th", h) for h in ("step", "seq", "command", "state", "sent")))
        ),
        tag("tbody", *rows),
    )
    more = (
        tag("p", f"steps {low}–{high} of {total} shown", class_="muted")
        if low > 1 or high < total
        else None
    )
    return page(
        f"replay {iid}",
        chrome,
        title,
        _divergence(view),
        _detail(steps[index - 1], index, total, iid),
        section("steps", more, listing, _end(view), id="steps"),
    )
