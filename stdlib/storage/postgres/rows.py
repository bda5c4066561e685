"""Rows read from PostgreSQL in the shape SQLite's give the runtime: times as eddic's ISO text.

The runtime and ``public_rows`` read instance and history rows as SQLite stores them (times as
``clock.to_text``); PostgreSQL keeps ``timestamptz``. Converting here, at the boundary, lets the
decoding in ``public_rows`` and ``instance`` serve both backends unchanged.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ...clock import to_text


def texts(row: dict[str, Any]) -> dict[str, Any]:
    """The row with every time as ISO text."""
    return {k: to_text(v) if isinstance(v, datetime) else v for k, v in row.items()}


def text_tuple(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(to_text(v) if isinstance(v, datetime) else v for v in row)


def utc(when: datetime) -> datetime:
    """``when`` in ``timezone.utc`` (psycopg gives the session zone as a ZoneInfo)."""
    return when.astimezone(timezone.utc)


def as_dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
