"""The frame every page shares: head, style, navigation, flash message, and the pieces pages
reuse (status badges, action forms, key-value tables, pagers).

Forms are plain HTML posts carrying the ``csrf`` value; reading needs no script. The one script
(``LIVE``) refreshes a page's ``data-live`` region in place while its box is ticked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..html import Html, join, tag, text, url

__all__ = ["Chrome", "badge", "form", "kv_table", "page", "section", "table"]

STYLE = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --bg:#f6f7fa; --card:#fff;
  --ok:#1f7a3f; --bad:#b42318; --warn:#a15c00; --run:#1f5fbf; --cancel:#6b6b6b; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, sans-serif; color:var(--fg); background:var(--bg); }
header.top { background:#1d2330; color:#fff; padding:10px 24px; display:flex; gap:24px;
  align-items:center; }
header.top a { color:#fff; text-decoration:none; font-weight:600; }
header.top .db { color:#aab3c5; font-size:12px; }
main { padding:16px 24px 48px; max-width:1400px; }
h1 { font-size:20px; margin:8px 0 12px; word-break:break-all; }
h2 { font-size:15px; margin:0 0 8px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:12px 16px; margin:0 0 14px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line);
  vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.id, td code, pre { font-family:ui-monospace, monospace; font-size:12.5px; }
td.id, td code { word-break:break-all; white-space:pre-wrap; }
pre { margin:0; white-space:pre-wrap; word-break:break-word; max-height:320px; overflow:auto;
  background:#f3f5f9; padding:6px 8px; border-radius:6px; }
a { color:var(--run); }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px;
  font-weight:600; color:#fff; background:var(--run); white-space:nowrap; }
.badge.completed, .badge.fired, .badge.received, .badge.published { background:var(--ok); }
.badge.failed, .badge.diverged, .badge.timed-out { background:var(--bad); }
.badge.compensating, .badge.parked, .badge.abandoned { background:var(--warn); }
.badge.cancelled { background:var(--cancel); }
.muted { color:var(--muted); }
.flash { background:#e8f1ff; border:1px solid #b8d0f5; padding:8px 12px; border-radius:6px;
  margin-bottom:12px; }
.flash.error { background:#fdecea; border-color:#f3b8b2; }
.chips a { margin-right:10px; white-space:nowrap; }
.chips a.on { font-weight:700; color:var(--fg); text-decoration:none; }
form.inline { display:inline-flex; gap:6px; align-items:center; flex-wrap:wrap; margin:4px 0; }
input, select, textarea, button { font:inherit; }
input[type=text], textarea, select { border:1px solid var(--line); border-radius:5px;
  padding:3px 6px; }
button { border:1px solid #8c96a8; background:#fff; border-radius:5px; padding:3px 10px;
  cursor:pointer; }
button.danger { border-color:var(--bad); color:var(--bad); }
.pager { margin-top:10px; display:flex; gap:16px; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(320px, 1fr)); gap:14px; }
.timeline .row { display:grid; grid-template-columns:360px 1fr 90px; gap:8px;
  align-items:center; padding:2px 0; border-bottom:1px solid #eef0f4; }
.timeline .label { overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.timeline .track { position:relative; height:14px; background:#f0f2f6; border-radius:3px; }
.timeline .bar { position:absolute; top:0; height:14px; border-radius:3px;
  background:var(--run); min-width:3px; }
.timeline .bar.completed, .timeline .bar.fired, .timeline .bar.received,
.timeline .bar.published { background:var(--ok); }
.timeline .bar.failed, .timeline .bar.timed-out { background:var(--bad); }
.timeline .bar.cancelled, .timeline .bar.abandoned { background:var(--cancel); }
.timeline .gap { color:var(--muted); padding:4px 0; font-style:italic; }
tr.current td { background:#fff7e0; }
"""

LIVE = """
(function () {
  var box = document.getElementById('live');
  if (!box) return;
  var timer = null;
  function tick() {
    fetch(location.href, {headers: {'X-Eddic-Fragment': '1'}, credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, 'text/html');
        var fresh = doc.querySelector('[data-live]');
        var here = document.querySelector('[data-live]');
        var typing = document.activeElement && here && here.contains(document.activeElement)
          && /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
        if (fresh && here && !typing) here.replaceWith(fresh);  // never under a user's typing
      }).catch(function () {});
  }
  function set() {
    if (timer) { clearInterval(timer); timer = null; }
    if (box.checked) timer = setInterval(tick, 2000);
    try { sessionStorage.setItem('eddic-live', box.checked ? '1' : ''); } catch (e) {}
  }
  try { box.checked = sessionStorage.getItem('eddic-live') === '1'; } catch (e) {}
  box.addEventListener('change', set);
  set();
})();
"""


class Chrome:
    """What every page needs from the viewer: the database shown, the csrf value, whether
    actions are allowed, and a message left by the last action."""

    def __init__(
        self, *, db: str, csrf: str, read_only: bool, flash: str | None = None, error: bool = False
    ) -> None:
        self.db = db
        self.csrf = csrf
        self.read_only = read_only
        self.flash = flash
        self.error = error


def page(title: str, chrome: Chrome, *body: Any) -> Html:
    flash = None
    if chrome.flash:
        flash = tag(
            "div", chrome.flash, class_="flash error" if chrome.error else "flash", role="status"
        )
    mode = " · read-only" if chrome.read_only else ""
    top = tag(
        "header",
        tag("a", "eddic", href="/"),
        tag("a", "instances", href="/"),
        tag("span", chrome.db + mode, class_="db"),
        class_="top",
    )
    return Html(
        "<!doctype html>"
        + tag(
            "html",
            tag(
                "head",
                Html('<meta charset="utf-8">'),
                Html('<meta name="viewport" content="width=device-width, initial-scale=1">'),
                tag("title", f"{title} · eddic"),
                tag("style", Html(STYLE)),
            ),
            tag("body", top, tag("main", flash, *body), tag("script", Html(LIVE))),
            lang="en",
        )
    )


def section(title: str, *body: Any, id: str | None = None, **attributes: Any) -> Html:
    return tag(
        "section", tag("h2", title) if title else None, *body, class_="card", id=id, **attributes
    )


def badge(state: str, label: str | None = None) -> Html:
    return tag("span", label or state, class_=f"badge {state.replace(' ', '-')}")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "none") -> Html:
    body = [
        tag("tr", *(cell if isinstance(cell, Html) else tag("td", cell) for cell in row))
        for row in rows
    ]
    if not body:
        return tag("p", empty, class_="muted")
    head = tag("thead", tag("tr", *(tag("th", h) for h in headers)))
    return tag("table", head, tag("tbody", *body))


def kv_table(pairs: Iterable[tuple[str, Any]]) -> Html:
    return tag("table", tag("tbody", *(tag("tr", tag("th", k), tag("td", v)) for k, v in pairs)))


def form(
    chrome: Chrome,
    action: str,
    fields: dict[str, Any],
    *controls: Any,
    button: str,
    danger: bool = False,
) -> Html | None:
    """A posting form with hidden ``fields`` and the csrf value; None on a read-only viewer."""
    if chrome.read_only:
        return None
    hidden = [
        Html(f'<input type="hidden" name="{text(k)}" value="{text(v)}">')
        for k, v in {**fields, "csrf": chrome.csrf}.items()
        if v is not None
    ]
    submit = tag("button", button, type="submit", class_="danger" if danger else None)
    return tag("form", *hidden, *controls, submit, method="post", action=action, class_="inline")


def field(name: str, placeholder: str, *, value: str = "", size: int = 24) -> Html:
    return Html(
        f'<input type="text" name="{text(name)}" placeholder="{text(placeholder)}" '
        f'value="{text(value)}" size="{size}" aria-label="{text(placeholder)}">'
    )


def link(label: Any, path: str, **query: Any) -> Html:
    return tag("a", label, href=url(path, **query))


def instance_link(instance_id: str, label: Any = None) -> Html:
    return tag(
        "a", label if label is not None else instance_id, href=url("/instance", id=instance_id)
    )


def pre(value: Html) -> Html:
    return tag("pre", value)


def joined(parts: Iterable[Any], sep: str = ", ") -> Html:
    return join(parts, sep)
