"""A step's history rows, written with as few statements as the rows allow.

Each ``INSERT`` costs its call through ``sqlite3`` and its own run of SQLite's program whatever
it writes, so a step's records go in pairs: one statement of two ``VALUES`` rows instead of two
statements (a step that resolves one activity and schedules the next writes exactly two). When
the step changes no column of its instance, the first statement also carries the lease check
(``WHERE EXISTS`` the instance row with that owner and epoch): it inserts its rows only while
the lease holds, and no row at all once it is lost, so the step needs no ``SELECT`` of its own
to be fenced (``steps.write_step``).

Every kind of record has its own ``VALUES`` row, with the columns it leaves empty written as
``NULL`` literals rather than bound (binding ``None`` costs an adapter lookup in ``sqlite3``),
so the statement texts are a few fixed ones, built once and kept here (and prepared once by
``sqlite3``'s statement cache).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ...clock import to_text
from ...errors import EddicError
from ..step import StepWrite
from .schema import MAX_POS, POS_BITS

_COLUMNS = "id, instance_id, pos, seq, record, kind, name, args, at, deadline, value, failure"
# One record's VALUES row by its kind; the parameters each binds are chosen in ``insert``.
_SCHEDULED = (
    "(?,?,?,?,'scheduled',?,?,?,?,NULL,NULL,NULL)"  # key, iid, pos, seq, kind, name, args, at
)
_SCHEDULED_DEADLINE = "(?,?,?,?,'scheduled',?,?,?,?,?,NULL,NULL)"  # ... at, deadline
_RESOLVED_VALUE = (
    "(?,?,?,?,'resolved',NULL,NULL,NULL,?,NULL,?,NULL)"  # key, iid, pos, seq, at, value
)
_RESOLVED_FAILURE = "(?,?,?,?,'resolved',NULL,NULL,NULL,?,NULL,NULL,?)"  # ... at, failure
_CANCEL = "(?,?,?,?,'cancel',NULL,NULL,NULL,?,NULL,?,NULL)"  # key, iid, pos, seq, at, value
_FENCE = (
    "WHERE EXISTS (SELECT 1 FROM instances WHERE instance_id = ? AND lock_owner = ? "
    "AND lock_epoch = ?)"
)


class _Texts(dict[tuple[str, ...], str]):
    """Statement texts by the VALUES rows they insert (one or two): built when first asked."""

    def __init__(self, fenced: bool) -> None:
        super().__init__()
        self.fenced = fenced

    def __missing__(self, rows: tuple[str, ...]) -> str:
        values = ", ".join(rows)
        if self.fenced:
            text = f"INSERT INTO history ({_COLUMNS}) SELECT * FROM (VALUES {values}) {_FENCE}"
        else:
            text = f"INSERT INTO history ({_COLUMNS}) VALUES {values}"
        self[rows] = text
        return text


_PLAIN = _Texts(fenced=False)
_FENCED = _Texts(fenced=True)


def insert(cur: sqlite3.Cursor, step: StepWrite, fenced: bool) -> bool:
    """Insert the step's history rows (two a statement). ``fenced``: the first statement
    inserts only while ``(step.owner, step.epoch)`` holds the instance's lease; False when it
    did not (nothing was written), True otherwise."""
    history = step.history
    if history[-1][1] > MAX_POS:
        raise EddicError(
            f"instance {step.instance_id!r} would record more than {MAX_POS} history records; "
            "split the work into several instances"
        )
    if len(history) > 2:
        for start in range(0, len(history), 2):
            if not _insert(cur, step, history[start : start + 2], fenced and start == 0):
                return False
        return True
    return _insert(cur, step, history, fenced)


def _insert(
    cur: sqlite3.Cursor, step: StepWrite, records: list[tuple[Any, ...]], fenced: bool
) -> bool:
    base = step.key << POS_BITS
    rows: tuple[str, ...] = ()
    params: tuple[Any, ...] = ()
    for iid, pos, seq, record, kind, name, args, when, due, value, failure in records:
        if record == "scheduled":
            if due is None:
                rows += (_SCHEDULED,)
                params += (base | pos, iid, pos, seq, kind, name, args, to_text(when))
            else:
                rows += (_SCHEDULED_DEADLINE,)
                params += (base | pos, iid, pos, seq, kind, name, args, to_text(when), to_text(due))
        elif record == "cancel":
            rows += (_CANCEL,)
            params += (base | pos, iid, pos, seq, to_text(when), value)
        elif failure is None:
            rows += (_RESOLVED_VALUE,)
            params += (base | pos, iid, pos, seq, to_text(when), value)
        else:
            rows += (_RESOLVED_FAILURE,)
            params += (base | pos, iid, pos, seq, to_text(when), failure)
    if fenced:
        params += (step.instance_id, step.owner, step.epoch)
        return cur.execute(_FENCED[rows], params).rowcount == len(rows)
    cur.execute(_PLAIN[rows], params)
    return True
