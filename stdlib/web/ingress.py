"""``POST /events``: CloudEvents in over HTTP, handed to ``App.send_event``.

:func:`events_endpoint` returns the Starlette endpoint; :func:`send_with` the ``send`` it calls
for each event, on an ``App``. The endpoint reads the body (at most ``max_body`` bytes: 413
past it, without reading further), parses it (:func:`eddic.web.cloudevents.parse`), calls
``send`` for each event in a worker thread (it writes to the database) and answers 202 with the
instances each event reached::

    {"id": "evt-1", "reached": ["order-7"]}                     structured and binary mode
    {"events": [{"id": "evt-1", "reached": [...]}, ...]}       batch mode

Errors are ``{"error": "..."}``: 400 a malformed event (or a ``ValueError`` / ``TypeError`` /
``SerializationError`` from ``send``), 404 an ``instanceid`` that names no instance, 409 one
that has finished, 413 too large, 415 no CloudEvent or data eddic cannot store. A batch is
parsed whole before anything is sent; if a send fails part-way, the error also lists the events
already delivered (``"events"``), and sending the whole batch again is safe: an instance ignores
an event id it already has.

Authentication and cross-site checks are the mounting application's (``eddic.web.create_app``
wraps this endpoint in them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import validate
from ..errors import CloudEventError, EddicError, InstanceNotFound, SerializationError
from .cloudevents import MAX_BODY, CloudEvent, mode, parse

Send = Callable[[CloudEvent], list[str]]
Endpoint = Callable[[Request], Awaitable[Response]]


@runtime_checkable
class EventSender(Protocol):
    """What :func:`send_with` sends through: ``eddic.App`` (its ``send_event``)."""

    def send_event(
        self,
        event_type: str,
        data: Any = None,
        *,
        source: str | None = None,
        id: str | None = None,
        instance_id: str | None = None,
        inline: bool = True,
    ) -> list[str]: ...


def send_with(app: EventSender | Callable[[], EventSender]) -> Send:
    """``send`` for :func:`events_endpoint`: ``app.send_event`` with the event's type, data,
    source, id and ``instanceid``, and ``inline=False`` (a web handler stores the event and
    returns; a serving worker runs the instances it reached). ``app`` may also be a callable
    returning the App, called for each event (so that one is opened only when needed)."""

    def send(event: CloudEvent) -> list[str]:
        target = app if isinstance(app, EventSender) else app()
        return target.send_event(
            event.type,
            event.data,
            source=event.source,
            id=event.id,
            instance_id=event.instanceid,
            inline=False,
        )

    return send


def events_endpoint(send: Send, *, max_body: int = MAX_BODY) -> Endpoint:
    """The ``POST /events`` endpoint (see the module): an async function of a ``Request``."""
    validate.count(max_body, "max_body", minimum=1)

    async def endpoint(request: Request) -> Response:
        content_type = request.headers.get("content-type")
        try:
            kind = mode(content_type, request.headers)
            body = await _read_body(request, max_body)
            events = parse(content_type, request.headers, body, max_body=max_body)
        except CloudEventError as exc:
            return _error(exc.status, exc.message)
        delivered: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            try:
                reached = await run_in_threadpool(send, event)
            except Exception as exc:
                status = _status_of(exc)
                if status is None:
                    raise
                where = f"event [{index}] (id {event.id!r}): " if kind == "batch" else ""
                extra = {"events": delivered} if kind == "batch" else {}
                return _error(status, f"{where}{type(exc).__name__}: {exc}", **extra)
            delivered.append({"id": event.id, "reached": list(reached)})
        if kind == "batch":
            return JSONResponse({"events": delivered}, status_code=202)
        return JSONResponse(delivered[0], status_code=202)

    return endpoint


def _status_of(exc: Exception) -> int | None:
    """The answer to an error ``send`` raised; ``None``: not the sender's fault (a 500)."""
    if isinstance(exc, (ValueError, TypeError, SerializationError)):
        return 400  # a reserved type, an id eddic refuses, data it cannot store
    if isinstance(exc, InstanceNotFound):
        return 404
    if type(exc) is EddicError:  # the target instance has finished
        return 409
    return None  # storage errors and the rest: the server's


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to exceed ``limit``: by its declared
    ``Content-Length`` before reading, or while reading a body longer than declared."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise CloudEventError(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise CloudEventError(413, f"the body is {declared} bytes, over the {limit} allowed")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CloudEventError(413, f"the body is over the {limit} bytes allowed")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


__all__ = ["EventSender", "Send", "events_endpoint", "send_with"]
