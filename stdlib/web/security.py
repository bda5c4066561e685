"""Who may read and change what the viewer shows.

Four checks, in this order, each answered with a 403 that says which failed:

* **Host.** Without a token the viewer trusts whoever can reach it, which is only safe on
  loopback: a request whose ``Host`` is not a loopback name is refused, so a web page that
  rebinds its own DNS name to 127.0.0.1 cannot read the viewer as a same-origin page. With a
  token, or with ``allowed_hosts`` given, the hosts are the caller's choice.
* **Token.** When one is set, every request but ``/login`` needs it: as ``Authorization: Bearer
  TOKEN`` (scripts, CloudEvents senders) or as the session cookie ``/login`` sets (a browser;
  ``HttpOnly``, ``SameSite=Strict``, holding a digest of the token, not the token).
* **Read-only.** ``--read-only`` refuses every state-changing request.
* **Cross-site requests.** A state-changing request whose ``Origin`` is another site, or whose
  ``Sec-Fetch-Site`` says it came from one, is refused; a form must also carry the per-process
  ``csrf`` value the viewer wrote into it (a page of another site cannot read it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

__all__ = ["COOKIE", "LOOPBACK_HOSTS", "Guard", "Refusal", "is_loopback"]

COOKIE = "eddic_session"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without a port) names this machine only."""
    name = host.strip("[]").lower()
    return name in LOOPBACK_HOSTS or name.startswith("127.") or name.endswith(".localhost")


def _host_name(host_header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8765`` -> ``::1``)."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Refusal(Exception):
    """Why a request is refused: an HTTP status and a sentence for the person who sent it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Guard:
    """The checks above, for one viewer. ``csrf`` is the value every form carries."""

    def __init__(
        self,
        *,
        token: str | None,
        read_only: bool,
        allowed_hosts: Collection[str] | None = None,
    ) -> None:
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ValueError("the viewer's token must be a non-empty string, or None")
        self.token = token
        self.read_only = read_only
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.csrf = secrets.token_urlsafe(32)
        self._session = (
            None
            if token is None
            else hmac.new(token.encode(), b"eddic viewer session", hashlib.sha256).hexdigest()
        )

    @property
    def session_cookie(self) -> str | None:
        """The cookie value a browser holds once logged in (None without a token)."""
        return self._session

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def check_read(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> None:
        """Raise :class:`Refusal` unless the request may read."""
        self.check_host(headers.get("host", ""))
        self._check_token(headers, cookies)

    def check_write(
        self,
        headers: Mapping[str, str],
        cookies: Mapping[str, str],
        form: Mapping[str, str] | None,
    ) -> None:
        """Raise :class:`Refusal` unless the request may change state. ``form`` is the posted
        form (it must carry ``csrf``), or None for a request that is not a form (``/events``,
        which takes only content types a cross-site form cannot send)."""
        self.check_read(headers, cookies)
        if self.read_only:
            raise Refusal(403, "this viewer is read-only (--read-only): nothing can be changed")
        self.check_same_origin(headers)
        if form is not None and not hmac.compare_digest(
            form.get("csrf", "").encode(), self.csrf.encode()
        ):
            raise Refusal(
                403,
                "the form's csrf value is missing or stale (the viewer restarted?): "
                "reload the page and submit again",
            )

    def check_host(self, host_header: str) -> None:
        name = _host_name(host_header).lower()
        if self.allowed_hosts is not None:
            if name not in self.allowed_hosts:
                raise Refusal(403, f"host {name!r} is not one this viewer serves")
            return
        if self.token is None and not is_loopback(name):
            raise Refusal(
                403,
                f"host {name!r} is not loopback: a viewer without a token answers only "
                "localhost (start it with --token, or give allowed_hosts)",
            )

    def _check_token(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> None:
        if self.token is None:
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(given.strip()):
            return
        cookie = cookies.get(COOKIE)
        session = self._session
        if (
            cookie is not None
            and session is not None
            and hmac.compare_digest(cookie.encode(), session.encode())
        ):
            return
        raise Refusal(
            401,
            "this viewer needs its token: log in at /login, or send 'Authorization: Bearer TOKEN'",
        )

    def check_same_origin(self, headers: Mapping[str, str]) -> None:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refusal(403, f"a cross-site request ({site}) cannot change anything here")
        origin = headers.get("origin")
        if origin is None:
            return
        if origin == "null" or urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
            raise Refusal(403, f"a request from {origin!r} cannot change anything here")
