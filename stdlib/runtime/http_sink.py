"""One POST of one outbox event to an http(s) sink, and the redaction of URLs in error texts.

Not ``urllib.request.urlopen``: it follows redirects (a 302 turns the POST into a body-less GET
to wherever the sink points, and a 200 there would mark the event sent), its timeout bounds each
socket operation rather than the request (a sink sending one byte a second holds it for as long
as it likes), and its errors quote the URL with its credentials. Here a 3xx is a refusal, the
relay bounds the whole exchange (:meth:`Exchange.abort` ends it from another thread), and no
message names more of the URL than :attr:`Target.shown`.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import re
import socket
import ssl
import threading
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from ..errors import SinkError, SinkTimeout

#: Longest error text stored for a row.
MAX_ERROR = 1000

#: A URL inside free text: scheme, optional userinfo (up to the last ``@`` of the authority, as
#: ``urlsplit`` reads it), the rest up to a query or fragment, which are dropped too.
_URL_IN_TEXT = re.compile(
    r"(?i)\b([a-z][a-z0-9+.-]*://)"  # scheme
    r"([^\s/?#'\"<>]*@)?"  # userinfo
    r"([^\s?#'\"<>]*)"  # host, port, path
    r"(\?[^\s#'\"<>]*)?(#[^\s'\"<>]*)?"  # query, fragment
)


@dataclass(frozen=True)
class Target:
    """A checked sink URL: where to connect, what to send, and how to name it in messages."""

    tls: bool
    host: str
    port: int
    path: str  # path and query, as sent (the query may hold a token: never shown)
    authorization: str | None  # from the URL's credentials, as HTTP basic auth
    shown: str  # scheme://host:port/path: all a message may say about the URL


def target_of(url: str) -> Target:
    """Parse ``url``; ``SinkError`` naming what is wrong, but never quoting the URL."""
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise SinkError("the sink URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, say; its message quotes the URL
        raise SinkError("the sink URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise SinkError(f"the sink URL must be http or https, not {scheme or 'schemeless'}")
    try:
        port = parts.port
    except ValueError:  # not a number in 0..65535; the message quotes it
        raise SinkError("the sink URL has an invalid port") from None
    host = parts.hostname
    if not host:
        raise SinkError("the sink URL has no host")
    if port is None:
        port = 443 if scheme == "https" else 80
    path = parts.path or "/"
    shown = f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}{path}"
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    sent = path + (f"?{parts.query}" if parts.query else "")
    return Target(scheme == "https", host, port, sent, authorization, shown)


class Exchange:
    """One POST of one body, run by one thread; :meth:`abort` from another ends it promptly.

    The relay runs :meth:`run` on a helper thread and waits at most the timeout: that bounds name
    resolution and connecting too, which no socket timeout can. Aborting shuts the socket down,
    so a read or write blocked on it returns at once and the helper thread ends too.
    """

    def __init__(self, target: Target, body: bytes) -> None:
        self.target = target
        self.body = body
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._aborted = False

    def run(self, timeout: float) -> None:
        """POST the body; ``SinkError`` unless the sink answers 2xx (a 3xx is not followed)."""
        connection = _Connection(self, timeout)
        headers = {"Content-Type": "application/cloudevents+json"}
        if self.target.authorization is not None:
            headers["Authorization"] = self.target.authorization
        try:
            connection.request("POST", self.target.path, self.body, headers)
            status = connection.getresponse().status  # the body is not needed: not read
        finally:
            with self._lock:
                self._socket = None
                connection.close()
        if 300 <= status < 400:
            raise SinkError(f"HTTP {status} (redirects are not followed)")
        if not 200 <= status < 300:
            raise SinkError(f"HTTP {status}")

    def abort(self) -> None:
        """End the exchange from another thread (the relay, once the timeout has passed)."""
        with self._lock:  # held while shutting down, so the helper cannot close it meanwhile
            self._aborted = True
            if self._socket is not None:
                # shutdown, not close: the helper thread may be inside a call on this socket,
                # and closing would free its descriptor for reuse under it
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._socket, socket.SHUT_RDWR)

    def connect(self, timeout: float) -> socket.socket:
        sock = socket.create_connection((self.target.host, self.target.port), timeout)
        try:
            if self.target.tls:
                sock = _tls().wrap_socket(
                    sock, server_hostname=self.target.host, do_handshake_on_connect=False
                )
            self._adopt(sock)
            if isinstance(sock, ssl.SSLSocket):
                sock.do_handshake()
        except BaseException:
            with self._lock:
                self._socket = None
                sock.close()
            raise
        return sock

    def _adopt(self, sock: socket.socket) -> None:
        """Make ``sock`` the one :meth:`abort` shuts down; refuse it if the relay gave up."""
        with self._lock:
            if not self._aborted:
                self._socket = sock
                return
        raise SinkTimeout("abandoned: the relay stopped waiting")


class _Connection(http.client.HTTPConnection):
    """``HTTPConnection`` whose socket comes from (and is shut down by) its :class:`Exchange`."""

    def __init__(self, exchange: Exchange, timeout: float) -> None:
        super().__init__(exchange.target.host, exchange.target.port, timeout=timeout)
        self._exchange = exchange
        self._timeout = timeout
        self.default_port = 443 if exchange.target.tls else 80  # the Host header omits it

    def connect(self) -> None:
        self.sock = self._exchange.connect(self._timeout)


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """The default context (verified certificates and host names), loaded once."""
    return ssl.create_default_context()


def secrets_of(url: str) -> list[str]:
    """The parts of ``url`` no message may show: credentials, query, fragment (longest first).

    Found by hand rather than with ``urlsplit``, which refuses some of the URLs that need it.
    """
    rest = url.split("://", 1)[-1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo = authority.rpartition("@")[0]
    before_fragment, _, fragment = rest.partition("#")
    query = before_fragment.partition("?")[2]
    found = {userinfo, *userinfo.split(":", 1), query, fragment}
    found |= {unquote(part) for part in found}
    return sorted((part for part in found if part), key=len, reverse=True)


def redact(text: str, url: str | None = None) -> str:
    """``text`` (an exception's message) without any URL's credentials, query or fragment.

    Any URL-looking part of the text loses them, and so does any literal copy of the sink URL's
    secrets (``http.client`` quotes a bad port or path without the rest of the URL).
    """
    text = _URL_IN_TEXT.sub(r"\1\3", text)
    for secret in secrets_of(url) if url else ():
        text = text.replace(secret, "***")
    return text


def cut(text: str) -> str:
    """At most ``MAX_ERROR`` characters: an exception's message is the sink's to choose."""
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "..."
