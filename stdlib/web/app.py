"""The viewer as an ASGI application (Starlette): routes, the checks of :mod:`.security` in front
of each, and the answers. What is shown comes from :class:`~eddic.web.viewer.Viewer`; how it
looks from :mod:`eddic.web.pages`.

Reads are ``GET`` pages; every change is a ``POST`` of a plain form (``/actions/...``) answered
with a redirect to the page it changed (303, so a reload does not post again), carrying a
message the page shows once. Blocking work (database reads, replays) runs in Starlette's thread
pool, never on the event loop.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import secrets
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import EddicError, InstanceNotFound
from ..runtime.app import App
from ..runtime.async_app import AsyncApp
from ..storage import shown_url
from .html import Html, href, tag
from .ingress import events_endpoint, send_with
from .pages.instance import render_instance
from .pages.layout import LIVE, Chrome, page, section
from .pages.listing import render_list
from .pages.replay import render_replay
from .security import COOKIE, Guard, Refusal
from .viewer import STATUSES, Done, ListQuery, Viewer

__all__ = ["create_app"]

MAX_FORM = 64 * 1024  # bytes of a posted form
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(LIVE.encode()).digest()).decode()
# No inline script but ours (by its hash), no plugin, no frame, no form to another site: an
# escaping mistake elsewhere still cannot run script.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; connect-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium posts forms with "Origin: null",
    # which the cross-site check must refuse
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class _Flashes:
    """Messages left by an action for the page it redirects to, by a random key, each shown
    once (a crafted link cannot make the viewer say something it did not)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[str, tuple[str, bool]] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def put(self, message: str, error: bool = False) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._items[key] = (message, error)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return key

    def take(self, key: str | None) -> tuple[str | None, bool]:
        if not key:
            return None, False
        with self._lock:
            return self._items.pop(key, (None, False))


def _html(body: Html, status: int = 200) -> HTMLResponse:
    return HTMLResponse(str(body), status_code=status, headers=HEADERS)


def _int(value: str | None, default: int | None) -> int | None:
    try:
        return int(value) if value is not None and value != "" else default
    except ValueError:
        return default


def create_app(
    db_url_or_app: str | App | AsyncApp,
    *,
    read_only: bool = False,
    token: str | None = None,
    allowed_hosts: Collection[str] | None = None,
) -> Starlette:
    """The viewer of one database (a URL) or of an ``App``'s (or ``AsyncApp``'s) database, as
    an ASGI application.

    ``read_only`` refuses every change; ``token`` is then needed by every request (``/login``
    sets it for a browser); without a token only loopback ``Host`` names are answered, unless
    ``allowed_hosts`` names the hosts to answer. ``POST /events`` takes CloudEvents.
    """
    viewer = Viewer(db_url_or_app)
    guard = Guard(token=token, read_only=read_only, allowed_hosts=allowed_hosts)
    flashes = _Flashes()
    shown_db = shown_url(viewer.db_url)
    ingress = events_endpoint(send_with(viewer.writer))

    def chrome(request: Request) -> Chrome:
        message, error = flashes.take(request.query_params.get("flash"))
        return Chrome(db=shown_db, csrf=guard.csrf, read_only=read_only, flash=message, error=error)

    def problem(request: Request, status: int, message: str) -> HTMLResponse:
        back = tag("p", tag("a", "back to the instances", href="/"))
        body = page(
            "error",
            Chrome(db=shown_db, csrf=guard.csrf, read_only=read_only, flash=message, error=True),
            back,
        )
        return _html(body, status)

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                guard.check_read(request.headers, request.cookies)
                return await handler(request)
            except Refusal as refusal:
                if request.url.path == "/events":
                    return JSONResponse({"error": refusal.reason}, refusal.status)
                if refusal.status == 401 and request.method == "GET":
                    return RedirectResponse("/login", 303)
                return problem(request, refusal.status, refusal.reason)
            except InstanceNotFound as exc:
                return problem(request, 404, str(exc))

        return run

    async def list_page(request: Request) -> Response:
        q = request.query_params
        status = q.get("status") or None
        if status is not None and status not in STATUSES:
            return problem(request, 400, f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        before, after = q.get("before") or None, q.get("after") or None
        if before and after:
            after = None
        query = ListQuery(
            status=status,
            workflow=q.get("workflow") or None,
            search=q.get("q") or None,
            before=before,
            after=after,
        )
        listed = await run_in_threadpool(viewer.list_page, query)
        return _html(render_list(listed, chrome(request)))

    async def instance_page(request: Request) -> Response:
        q = request.query_params
        iid = q.get("id")
        if not iid:
            return problem(request, 400, "which instance? /instance?id=INSTANCE_ID")
        view = await run_in_threadpool(
            viewer.instance, iid, run=_int(q.get("run"), None), start=_int(q.get("hfrom"), 0) or 0
        )
        return _html(render_instance(view, chrome(request)))

    async def replay_page(request: Request) -> Response:
        q = request.query_params
        iid = q.get("id")
        if not iid:
            return problem(request, 400, "which instance? /replay?id=INSTANCE_ID")
        step = _int(q.get("step"), None)
        view = await run_in_threadpool(functools.partial(viewer.replay, iid, step=step))
        return _html(render_replay(view, chrome(request), step))

    async def read_form(request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise Refusal(413, f"a form of more than {MAX_FORM} bytes")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise Refusal(415, "actions take application/x-www-form-urlencoded forms")
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise Refusal(400, "the form is not UTF-8") from None

    def action(
        run: Callable[[dict[str, str]], Done],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            form = await read_form(request)
            guard.check_write(request.headers, request.cookies, form)
            try:
                done = await run_in_threadpool(run, form)
            except InstanceNotFound:
                raise
            except (ValueError, TypeError, EddicError) as exc:
                return problem(request, 400, f"{type(exc).__name__}: {exc}")
            key = flashes.put(done.message)
            if done.instance_id:
                return RedirectResponse(href("/instance", id=done.instance_id, flash=key), 303)
            return RedirectResponse(href("/", flash=key), 303)

        return handle

    def need(form: dict[str, str], name: str) -> str:
        value = form.get(name, "")
        if not value:
            raise ValueError(f"the form has no {name!r}")
        return value

    async def events(request: Request) -> Response:
        guard.check_write(request.headers, request.cookies, None)
        return await ingress(request)

    async def login_page(request: Request) -> Response:
        if request.method == "POST":
            form = await read_form(request)
            guard.check_host(request.headers.get("host", ""))
            guard.check_same_origin(request.headers)
            if guard.session_cookie is None:
                return RedirectResponse("/", 303)
            if not guard.token_matches(form.get("token", "")):
                return problem(request, 401, "that is not this viewer's token")
            response = RedirectResponse("/", 303)
            response.set_cookie(
                COOKIE,
                guard.session_cookie,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
            return response
        login_form = tag(
            "form",
            Html(
                '<input type="password" name="token" placeholder="token" aria-label="token" '
                "autofocus>"
            ),
            tag("button", "log in", type="submit"),
            method="post",
            action="/login",
            class_="inline",
        )
        return _html(
            page(
                "log in",
                Chrome(db=shown_db, csrf="", read_only=read_only),
                section("this viewer needs its token", login_form),
            )
        )

    async def login(request: Request) -> Response:
        try:
            return await login_page(request)
        except Refusal as refusal:
            return problem(request, refusal.status, refusal.reason)

    actions = {
        "cancel": lambda f: viewer.cancel(need(f, "id"), f.get("reason") or None),
        "event": lambda f: viewer.send_event(
            need(f, "type"),
            f.get("data", ""),
            instance_id=f.get("instance_id") or None,
            event_id=f.get("event_id") or None,
        ),
        "retry": lambda f: viewer.retry(need(f, "id")),
        "outbox-retry": lambda f: viewer.outbox_retry(
            need(f, "event_id"), f.get("instance_id") or None
        ),
        "outbox-discard": lambda f: viewer.outbox_discard(
            need(f, "event_id"), f.get("instance_id") or None
        ),
    }
    routes = [
        Route("/", guarded(list_page), methods=["GET"]),
        Route("/instance", guarded(instance_page), methods=["GET"]),
        Route("/replay", guarded(replay_page), methods=["GET"]),
        Route("/events", guarded(events), methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        *(
            Route(f"/actions/{name}", guarded(action(run)), methods=["POST"])
            for name, run in actions.items()
        ),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(viewer.close)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.viewer = viewer
    return app
