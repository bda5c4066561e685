"""The outbox relay under faulty sinks: whatever a sink does, a delivery is one bounded attempt.

Every test talks to a real server on 127.0.0.1 (``http.server`` in a thread, or a raw socket
server for replies no HTTP server would send). A delivery that goes wrong in any way is a failed
attempt (counted, backed off, finally ``failed``); it never raises out of the relay, never lasts
longer than the timeout, never follows a redirect and never stores a URL's credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from eddic import App, Event, Publish, WorkflowContext, workflow
from eddic.cli import main as cli_main
from eddic.clock import from_text, utcnow
from eddic.runtime.outbox import backoff

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SECRETS = ("user", "s3cret", "token", "t0ken", "sig")


@workflow
def oft_flow(ctx: WorkflowContext, n: int) -> int:
    yield Publish("fault.test", data={"n": n})
    return n


@workflow
def oft_big(ctx: WorkflowContext, size: int) -> int:
    yield Publish("fault.big", data={"blob": "x" * size})
    return size


def rows(app: App) -> list[tuple[Any, ...]]:
    with app.storage.reading() as db:
        return db.execute("SELECT status, attempts, last_error FROM outbox ORDER BY id").fetchall()


def open_app(db_path: Path, sink: Any, **options: Any) -> App:
    options.setdefault("outbox_timeout_seconds", 2.0)
    return App(db_url=f"sqlite:///{db_path}", outbox_enabled=True, outbox_sink=sink, **options)


# -- servers -------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    port: int
    seen: list[Seen] = field(default_factory=list)


Respond = Callable[[Seen], tuple[int, dict[str, str]]]


@pytest.fixture
def http_server() -> Iterator[Callable[[Respond], Server]]:
    """Start ``http.server`` servers answering with ``respond(request) -> (status, headers)``."""
    started: list[ThreadingHTTPServer] = []

    def start(respond: Respond) -> Server:
        server_info: Server

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = Seen(self.command, self.path, dict(self.headers), body)
                server_info.seen.append(seen)
                status, headers = respond(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = do_HEAD = _any

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        port = server.server_port
        server_info = Server(f"http://127.0.0.1:{port}/events", port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server_info

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def read_request(conn: socket.socket) -> bytes:
    """The request head, after reading its body too (so closing does not reset the connection)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, threading.Event], None]], int]]:
    """Start TCP servers that run ``handle(connection, stop)`` per connection; yields the port."""
    stop = threading.Event()
    listeners: list[socket.socket] = []

    def start(handle: Callable[[socket.socket, threading.Event], None]) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve_one(conn: socket.socket) -> None:
            with conn, contextlib.suppress(OSError):  # the client gave up: what tests want
                handle(conn, stop)

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        port: int = listener.getsockname()[1]
        return port

    yield start
    stop.set()
    for listener in listeners:
        listener.close()


def replying(reply: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def handle(conn: socket.socket, stop: threading.Event) -> None:
        read_request(conn)
        conn.sendall(reply)

    return handle


def answering_at_once(reply: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """Send ``reply`` before reading anything, then read until the client closes."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(reply)
        conn.settimeout(10)
        while conn.recv(65536):
            pass

    return handle


def trickling(
    reply: bytes, every: float, *, read: bool = True
) -> Callable[[socket.socket, threading.Event], None]:
    """Read the request (if ``read``), then send ``reply`` one byte every ``every`` seconds."""

    def handle(conn: socket.socket, stop: threading.Event) -> None:
        if read:
            read_request(conn)
        for byte in reply:
            if stop.wait(every):
                return
            conn.sendall(bytes([byte]))

    return handle


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Accept, read nothing, answer nothing, until the client or the test gives up."""
    conn.settimeout(0.1)
    while not stop.is_set():
        try:
            if not conn.recv(1, socket.MSG_PEEK):
                return
        except TimeoutError:
            continue
        stop.wait(0.1)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- 1. redirects --------------------------------------------------------------------------------


def test_a_redirect_is_a_failed_delivery_and_is_never_followed(
    db_path: Path, http_server: Callable[[Respond], Server]
) -> None:
    elsewhere = http_server(lambda seen: (200, {}))
    sink = http_server(lambda seen: (302, {"Location": elsewhere.url}))
    with (
        freeze_time(T0, real_asyncio=True) as clock,
        open_app(db_path, sink.url, outbox_max_attempts=2) as app,
    ):
        app.start(oft_flow, input=1)
        app.run_due()
        status, attempts, error = rows(app)[0]
        assert (status, attempts) == ("pending", 1)
        assert "HTTP 302" in error and "not followed" in error
        clock.tick(timedelta(seconds=1))
        app.run_due()
        assert rows(app)[0][:2] == ("failed", 2)
    assert len(sink.seen) == 2
    assert sink.seen[0].method == "POST"
    assert elsewhere.seen == []  # the relay never went where the 302 pointed


@pytest.mark.parametrize("status", [300, 301, 303, 304, 307, 308])
def test_every_3xx_is_a_failed_delivery(
    db_path: Path, http_server: Callable[[Respond], Server], status: int
) -> None:
    elsewhere = http_server(lambda seen: (200, {}))
    sink = http_server(lambda seen: (status, {"Location": elsewhere.url}))
    with open_app(db_path, sink.url, outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        assert rows(app)[0][:2] == ("failed", 1)
        assert f"HTTP {status}" in rows(app)[0][2]
    assert elsewhere.seen == []


# -- 2. exceptions never escape ------------------------------------------------------------------

MALFORMED = {
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n",
    "too-many-headers": b"HTTP/1.1 200 OK\r\n" + b"X-Header: v\r\n" * 150 + b"\r\n",
    "overlong-status-line": b"HTTP/1.1 200 " + b"O" * 70_000 + b"\r\n\r\n",
    "overlong-header": b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 70_000 + b"\r\n\r\n",
    "status-out-of-range": b"HTTP/1.1 2000 OK\r\n\r\n",
    "status-not-a-number": b"HTTP/1.1 OK OK\r\n\r\n",
    "closed-without-a-reply": b"",
    "binary": bytes(range(256)) * 4,
}


@pytest.mark.parametrize("reply", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_reply_is_a_failed_attempt(
    db_path: Path, raw_server: Callable[..., int], reply: bytes
) -> None:
    port = raw_server(replying(reply))
    with (
        freeze_time(T0, real_asyncio=True) as clock,
        open_app(db_path, f"http://127.0.0.1:{port}/in", outbox_max_attempts=2) as app,
    ):
        app.start(oft_flow, input=1)
        app.run_due()  # no exception out of the relay
        status, attempts, error = rows(app)[0]
        assert (status, attempts) == ("pending", 1)
        assert error.startswith(f"POST http://127.0.0.1:{port}/in")
        clock.tick(timedelta(seconds=1))
        app.run_due()
        assert rows(app)[0][:2] == ("failed", 2)


def test_an_https_sink_answering_plain_http_is_a_failed_attempt(
    db_path: Path, raw_server: Callable[..., int]
) -> None:
    port = raw_server(answering_at_once(b"HTTP/1.1 200 OK\r\n\r\n"))
    with open_app(db_path, f"https://127.0.0.1:{port}/in", outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        status, attempts, error = rows(app)[0]
    assert (status, attempts) == ("failed", 1)
    assert "SSL" in error


BAD_SINKS: dict[str, Any] = {
    "no-host": "http://",
    "ftp": "ftp://x",
    "unclosed-ipv6": "http://[::1",
    "no-scheme": "127.0.0.1:8080/events",
    "empty": "",
    "port-out-of-range": "http://127.0.0.1:99999/",
    "port-not-a-number": "http://127.0.0.1:http/",
    "space-in-path": "http://127.0.0.1:1/a b",
    "newline-in-host": "http://127.0.0.1\r\nX-Injected: 1/",
    "non-ascii-host": "http://ex\u00e4mple\u2603.invalid/",
    "bytes": b"http://127.0.0.1:1/",
    "number": 42,
    "object": object(),
}


@pytest.mark.parametrize("sink", list(BAD_SINKS.values()), ids=list(BAD_SINKS))
def test_a_bad_sink_is_a_failed_attempt_never_an_exception(db_path: Path, sink: Any) -> None:
    with (
        freeze_time(T0, real_asyncio=True) as clock,
        open_app(db_path, sink, outbox_max_attempts=2, outbox_timeout_seconds=1.0) as app,
    ):
        app.start(oft_flow, input=1)
        app.run_due()
        status, attempts, error = rows(app)[0]
        assert (status, attempts) == ("pending", 1)
        assert error
        clock.tick(timedelta(seconds=1))
        app.run_due()
        assert rows(app)[0][:2] == ("failed", 2)


class Custom(BaseException):
    pass


RAISED: dict[str, BaseException] = {
    "value-error": ValueError("no"),
    "system-exit": SystemExit(3),
    "cancelled": asyncio.CancelledError(),
    "generator-exit": GeneratorExit(),
    "custom-base-exception": Custom("odd"),
    "memory-error": MemoryError(),
}


@pytest.mark.parametrize("exc", list(RAISED.values()), ids=list(RAISED))
def test_a_callable_sink_raising_anything_is_a_failed_delivery(
    db_path: Path, exc: BaseException
) -> None:
    def sink(event: Event) -> None:
        raise exc

    with open_app(db_path, sink, outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        status, attempts, error = rows(app)[0]
    assert (status, attempts) == ("failed", 1)
    assert type(exc).__name__ in error


def test_a_keyboard_interrupt_from_a_callable_sink_is_passed_on(db_path: Path) -> None:
    def sink(event: Event) -> None:
        raise KeyboardInterrupt

    with open_app(db_path, sink) as app:
        app.start(oft_flow, input=1)
        with pytest.raises(KeyboardInterrupt):
            app.relay_outbox()
        assert rows(app)[0][:2] == ("pending", 0)  # not counted: the process was asked to stop


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_an_exception_that_cannot_be_printed_is_still_a_failed_attempt(db_path: Path) -> None:
    def sink(event: Event) -> None:
        raise Unprintable

    with open_app(db_path, sink, outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        status, attempts, error = rows(app)[0]
    assert (status, attempts) == ("failed", 1)
    assert "Unprintable" in error


def test_a_row_that_cannot_be_decoded_is_a_failed_attempt(db_path: Path) -> None:
    seen: list[Event] = []
    with open_app(db_path, seen.append, outbox_max_attempts=1) as app:
        broken = app.start(oft_flow, input=1)
        app.start(oft_flow, input=2)
        with app.storage.transaction() as db:
            db.execute(
                "UPDATE outbox SET data = '{not json', time = 'yesterday' WHERE instance_id = ?",
                [broken],
            )
        app.run_due()
        assert rows(app)[0][:2] == ("failed", 1)
        assert rows(app)[1][:2] == ("sent", 1)
    assert [e.data["n"] for e in seen] == [2]


# -- 3. each delivery is bounded from end to end -------------------------------------------------


@pytest.mark.parametrize(
    "handler",
    [
        pytest.param(
            trickling(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n", 0.3),
            id="trickling-headers",
        ),
        pytest.param(
            trickling(b"HTTP/1.1 100 Continue\r\n\r\n" * 60 + b"HTTP/1.1 200 OK\r\n\r\n", 0.05),
            id="endless-100-continue",
        ),
        pytest.param(silent, id="silent"),
    ],
)
def test_a_slow_sink_fails_within_the_timeout(
    db_path: Path, raw_server: Callable[..., int], handler: Any
) -> None:
    port = raw_server(handler)
    before = set(threading.enumerate())
    with open_app(db_path, f"http://127.0.0.1:{port}/", outbox_timeout_seconds=1.0) as app:
        app.start(oft_flow, input=1)
        began = time.perf_counter()
        app.run_due()
        elapsed = time.perf_counter() - began
        status, attempts, error = rows(app)[0]
    assert elapsed < 5.0, f"the delivery took {elapsed:.1f}s with a 1s timeout"
    assert (status, attempts) == ("pending", 1)
    assert "within 1.0s" in error
    for helper in set(threading.enumerate()) - before:
        if helper.name == "eddic-outbox-sink":
            helper.join(3.0)  # the connection was shut down: the abandoned exchange ends too
            assert not helper.is_alive()


def test_an_https_handshake_that_never_ends_fails_within_the_timeout(
    db_path: Path, raw_server: Callable[..., int]
) -> None:
    # a TLS record holding a 16 KB ServerHello, sent one byte at a time
    hello = b"\x16\x03\x03\x40\x00" + b"\x02\x00\x3f\xfc\x03\x03" + b"\x00" * 300
    port = raw_server(trickling(hello, 0.3, read=False))
    with open_app(db_path, f"https://127.0.0.1:{port}/", outbox_timeout_seconds=1.0) as app:
        app.start(oft_flow, input=1)
        began = time.perf_counter()
        app.run_due()
        elapsed = time.perf_counter() - began
        assert rows(app)[0][:2] == ("pending", 1)
    assert elapsed < 5.0


def test_a_sink_that_does_not_read_the_body_fails_within_the_timeout(
    db_path: Path, raw_server: Callable[..., int]
) -> None:
    port = raw_server(silent)  # an 8 MB body fills the socket buffers, then send blocks
    with open_app(db_path, f"http://127.0.0.1:{port}/", outbox_timeout_seconds=1.0) as app:
        app.start(oft_big, input=8_000_000)
        began = time.perf_counter()
        app.run_due()
        elapsed = time.perf_counter() - began
        assert rows(app)[0][:2] == ("pending", 1)
    assert elapsed < 5.0


def test_a_pass_ends_after_a_delivery_times_out(db_path: Path) -> None:
    """A sink that hangs hangs for every row: one timeout per pass, not one per instance."""
    release = threading.Event()
    with open_app(db_path, lambda event: release.wait(30), outbox_timeout_seconds=0.5) as app:
        for n in range(10):
            app.start(oft_flow, input=n)
        began = time.perf_counter()
        app.relay_outbox()
        elapsed = time.perf_counter() - began
        release.set()
        counted = [r[1] for r in rows(app)]
    assert elapsed < 2.5, f"one pass waited {elapsed:.1f}s"
    assert counted == [1] + [0] * 9  # the others wait for the next pass, uncounted


def test_a_pass_relays_only_the_rows_that_existed_when_it_began(db_path: Path) -> None:
    """Rows published while the relay runs wait for the next pass, so a pass always ends."""
    app: App
    spawned: list[int] = []

    def sink(event: Event) -> None:
        if len(spawned) < 50:  # a sink whose every delivery publishes another event
            spawned.append(1)
            app.start(oft_flow, input=100 + len(spawned))

    with open_app(db_path, sink) as app:
        app.start(oft_flow, input=1)
        assert app.relay_outbox() == 1
        assert len(spawned) == 1
        assert app.relay_outbox() == 1  # the next pass takes the new one


def test_each_row_is_claimed_from_the_time_its_own_delivery_starts(db_path: Path) -> None:
    """A slow round must not leave later rows with a claim that has already run out."""
    claims: list[tuple[datetime, datetime]] = []
    clock_box: list[Any] = []
    app: App

    def sink(event: Event) -> None:
        with app.storage.reading() as db:
            until = db.execute(
                "SELECT next_attempt_at FROM outbox WHERE event_id = ?", [event.id]
            ).fetchone()[0]
        when = from_text(until)
        assert when is not None
        claims.append((utcnow(), when))
        clock_box[0].tick(timedelta(seconds=120))  # this delivery "took" two minutes

    with (
        freeze_time(T0, real_asyncio=True) as clock,
        open_app(db_path, sink, outbox_timeout_seconds=5.0) as app,
    ):
        clock_box.append(clock)
        for n in range(3):
            app.start(oft_flow, input=n)
        app.relay_outbox()
    assert len(claims) == 3
    for started, until in claims:
        assert until - started >= timedelta(seconds=5)


# -- 4. no secrets in errors ---------------------------------------------------------------------


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked into {text!r}"


def cli_outbox(db_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    cli_main(["--db", f"sqlite:///{db_path}", "outbox", "--all"])
    cli_main(["--db", f"sqlite:///{db_path}", "outbox", "--all", "--json"])
    out, err = capsys.readouterr()
    return out + err


def test_credentials_and_the_query_never_reach_an_error_or_the_cli(
    db_path: Path, http_server: Callable[[Respond], Server], capsys: pytest.CaptureFixture[str]
) -> None:
    down = http_server(lambda seen: (503, {}))
    refused = closed_port()
    sinks = [
        f"http://user:s3cret@127.0.0.1:{down.port}/events?token=t0ken&sig=1",
        f"http://user:s3cret@127.0.0.1:{refused}/events?token=t0ken",
        f"http://user:s3cret@127.0.0.1:{down.port}/a b?token=t0ken",
        "http://user:s3cret@127.0.0.1:notaport/events?token=t0ken",
        "http://us@er:s3cret/events?token=t0ken",
        "http://user:s3cret@[::1/events?token=t0ken",
        "ftp://user:s3cret@127.0.0.1/events?token=t0ken",
        f"http://user:s3cret@127.0.0.1:{down.port}/events#token=t0ken",
    ]
    for sink in sinks:
        with open_app(db_path, sink, outbox_max_attempts=1) as app:
            app.start(oft_flow, input=1)
            app.run_due()
    with App(db_url=f"sqlite:///{db_path}") as app:
        errors = [r[2] for r in rows(app)]
    assert len(errors) == len(sinks)
    for error in errors:
        assert error
        assert_no_secrets(error)
    assert errors[0] == f"POST http://127.0.0.1:{down.port}/events: HTTP 503"
    assert errors[1].startswith(f"POST http://127.0.0.1:{refused}/events: ")
    assert_no_secrets(cli_outbox(db_path, capsys))


def test_credentials_in_the_url_are_sent_as_basic_auth(
    db_path: Path, http_server: Callable[[Respond], Server]
) -> None:
    expected = "Basic " + base64.b64encode(b"user:s3cret p@ss").decode()

    def respond(seen: Seen) -> tuple[int, dict[str, str]]:
        return (204 if seen.headers.get("Authorization") == expected else 401), {}

    server = http_server(respond)
    url = f"http://user:s3cret%20p%40ss@127.0.0.1:{server.port}/in?token=t0ken"
    with open_app(db_path, url) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        assert rows(app)[0][:2] == ("sent", 1)
    assert server.seen[0].path == "/in?token=t0ken"  # the query is sent, only never shown


def test_a_callable_sink_error_quoting_a_url_is_redacted(db_path: Path) -> None:
    def sink(event: Event) -> None:
        raise ConnectionError(
            "POST https://user:s3cret@hooks.example/x?token=t0ken failed; "
            "retry at 'http://user@other.example:8080/y?sig=abc'"
        )

    with open_app(db_path, sink, outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        error = rows(app)[0][2]
    assert_no_secrets(error)
    assert "https://hooks.example/x" in error
    assert "http://other.example:8080/y" in error


def post_with_token(event: Event, token: str) -> None:
    raise ConnectionError("refused")


def test_a_callable_sink_is_named_without_its_repr(db_path: Path) -> None:
    sink = functools.partial(post_with_token, token="s3cret")  # its repr shows the token
    with open_app(db_path, sink, outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        error = rows(app)[0][2]
    assert_no_secrets(error)
    assert "ConnectionError: refused" in error


# -- the rest of the same class ------------------------------------------------------------------


def test_backoff_is_capped_for_any_attempt_count() -> None:
    assert [backoff(n) for n in (1, 2, 3, 9, 10)] == [1.0, 2.0, 4.0, 256.0, 300.0]
    assert backoff(5000) == 300.0


def test_a_row_with_many_attempts_still_backs_off(db_path: Path) -> None:
    def sink(event: Event) -> None:
        raise ConnectionError("down")

    with open_app(db_path, sink, outbox_max_attempts=1_000_000) as app:
        app.start(oft_flow, input=1)
        with app.storage.transaction() as db:
            db.execute("UPDATE outbox SET attempts = 5000")
        app.run_due()
        assert rows(app)[0][:2] == ("pending", 5001)


def test_a_long_error_is_cut_short(db_path: Path) -> None:
    def sink(event: Event) -> None:
        raise ValueError("x" * 1_000_000)

    with open_app(db_path, sink, outbox_max_attempts=1) as app:
        app.start(oft_flow, input=1)
        app.run_due()
        error = rows(app)[0][2]
    assert 100 < len(error) <= 1000
