"""What a ``postgresql://`` URL names: the libpq connection string and eddic's schema.

``?schema=NAME`` is eddic's, not libpq's (which refuses parameters it does not know), so it is
taken off before connecting. The password never appears in what this module builds for
messages (``redacted``): errors are logged and shown, and a URL in them must not leak it.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import StorageError

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "eddic"
# A schema name eddic quotes itself; kept to what needs no thought in a NOTIFY channel name.
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")


class PostgresURL(NamedTuple):
    conninfo: str  # the URL libpq gets: without ``schema``
    schema: str
    redacted: str  # the URL for messages: the password replaced by ``***``


def parse_postgres_url(db_url: str) -> PostgresURL:
    parts = urlsplit(db_url)
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"unsupported db_url scheme {parts.scheme!r}: use postgresql://user:pw@host:port/db"
        )
    schema = DEFAULT_SCHEMA
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema {schema!r} is not a plain name (letters, digits and _, at most 48, "
            "not starting with a digit)"
        )
    conninfo = urlunsplit(parts._replace(query=urlencode(kept)))
    return PostgresURL(conninfo, schema, redact(db_url))


def redact(db_url: str) -> str:
    """``db_url`` with its password (if any) replaced by ``***``."""
    parts = urlsplit(db_url)
    if parts.password is None:
        return db_url
    host = parts.netloc.rpartition("@")[2]
    user = parts.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def scrub(message: str, password: str | None) -> str:
    """A driver's message with the password taken out, wherever libpq may have quoted it."""
    if password:
        message = message.replace(password, "***")
    return message


def password_of(db_url: str) -> str | None:
    return urlsplit(db_url).password


__all__ = ["DEFAULT_SCHEMA", "PostgresURL", "StorageError", "parse_postgres_url", "redact"]
