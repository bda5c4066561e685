"""Group commit: the steps of several threads share one write transaction and one fsync.

SQLite has one writer at a time and makes each commit durable with an fsync, which costs more
than the Python work of a whole step. When threads of one process commit concurrently, a thread
that finds a commit in flight queues its work; when that commit ends, the first queued thread
becomes the leader and commits everything queued meanwhile in one ``BEGIN IMMEDIATE``
transaction, each piece of work in its own savepoint. So:

- every piece of work is atomic on its own: one that raises (a lost lease, a constraint) is
  rolled back and its error is raised in its own thread; the others commit. Failures are rare,
  so a batch first runs without savepoints; if a piece raises, the transaction is rolled back
  and the batch runs again with a savepoint around each piece;
- a thread returns only after the commit that holds its work is durable, so nothing a step
  decided (the next activity) runs before the step is recorded;
- a thread alone never waits and pays no savepoint: its work is the whole transaction. It
  takes the writer directly: no queue entry, no batch, no list (``run``'s first branch), which
  is most of the inline path's commits.

Commits per step fall below one as the number of committing threads grows; this is what lets
concurrent callers of ``App.start`` (or several workers in one process) approach the disk's
commit rate instead of queueing one fsync each.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

import sqlite_utils

from ...kernel import EddicError
from .transactions import WriteTransaction

T = TypeVar("T")


class _Work(Generic[T]):
    __slots__ = ("done", "error", "fn", "result", "wakeup")

    def __init__(self, fn: Callable[[sqlite_utils.Database], T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False
        # For a thread that queues: held from the start, released once, by the leader that
        # commits this work (done) or hands this thread the lead (not done).
        self.wakeup: threading.Lock | None = None


class GroupCommit:
    """Runs write work in shared transactions; see the module docstring."""

    def __init__(
        self, transaction: Callable[[], AbstractContextManager[sqlite_utils.Database]]
    ) -> None:
        """``transaction()`` opens one write transaction (``Storage.transaction``)."""
        self._transaction = transaction
        # One leader at a time uses it, so a ``WriteTransaction`` (which holds no state between
        # uses) is built once and shared by every commit of the group; anything else (a
        # wrapped ``Storage.transaction``: a generator, single use) is asked for per commit.
        first = transaction()
        self._shared = first if isinstance(first, WriteTransaction) else None
        self._reset()
        self.batches = 0  # transactions committed (tests and benchmarks read these)
        self.works = 0
        _ALL.add(self)

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._queue: list[_Work[Any]] = []
        self._leading = False

    def run(self, fn: Callable[[sqlite_utils.Database], T]) -> T:
        """Run ``fn(db)`` inside a write transaction; return its result once it is durable.

        ``fn`` must only write through ``db``: it may run twice, when another piece of its
        batch fails and the batch is redone with savepoints.
        """
        mutex = self._mutex
        with mutex:
            alone = not self._leading
            if alone:
                self._leading = True
            else:
                work: _Work[T] = _Work(fn)
                wakeup = work.wakeup = threading.Lock()
                wakeup.acquire()
                self._queue.append(work)
        if alone:
            # No commit in flight, no one queued: take the writer directly. Threads that queue
            # meanwhile are handed the lead once this commit is over, as after a batch.
            try:
                shared = self._shared
                if shared is not None:
                    return shared.run(fn)  # ``with`` and ``fn(db)``, in one frame
                with self._transaction() as db:
                    return fn(db)
            finally:
                self.batches += 1
                self.works += 1
                with mutex:
                    queue = self._queue
                    successor = queue.pop(0) if queue else None
                    if successor is None:
                        self._leading = False
                if successor is not None:
                    successor.wakeup.release()  # type: ignore[union-attr]
        wakeup.acquire()  # woken exactly once: done, or leading the next batch
        if not work.done:
            self._lead(work)
        if work.error is not None:
            raise work.error
        return work.result  # type: ignore[return-value]

    def _lead(self, work: _Work[Any]) -> None:
        with self._mutex:
            batch = [work, *self._queue]
            self._queue.clear()
        try:
            self._commit(batch)
        finally:
            for item in batch:
                if not item.done:  # this thread was interrupted mid-batch
                    item.error = EddicError("the commit holding this step was interrupted")
                    item.done = True
            with self._mutex:
                successor = self._queue.pop(0) if self._queue else None
                if successor is None:
                    self._leading = False
            for item in batch[1:]:
                item.wakeup.release()  # type: ignore[union-attr]
            if successor is not None:
                successor.wakeup.release()  # type: ignore[union-attr]  # it leads the next batch

    def _commit(self, batch: list[_Work[Any]]) -> None:
        try:
            self._commit_all(batch)
        except _Failed:
            # Some work raised: its writes must go, the others' stay. Do it again, each piece
            # in its own savepoint (the work is plain SQL on the same state, so it can rerun).
            for item in batch:
                item.result, item.error = None, None
            try:
                self._commit_each(batch)
            except BaseException as exc:
                self._fail(batch, exc)
        except BaseException as exc:
            self._fail(batch, exc)
        self.batches += 1
        self.works += len(batch)
        for item in batch:
            item.done = True

    def _commit_all(self, batch: list[_Work[Any]]) -> None:
        """The common case: every piece succeeds, one transaction and no savepoints."""
        with self._shared or self._transaction() as db:
            for item in batch:
                try:
                    item.result = item.fn(db)
                except BaseException as exc:
                    if len(batch) == 1:
                        raise
                    raise _Failed from exc

    def _commit_each(self, batch: list[_Work[Any]]) -> None:
        with self._shared or self._transaction() as db:
            execute = db.conn.execute
            for item in batch:
                execute("SAVEPOINT eddic_work")
                try:
                    item.result = item.fn(db)
                except BaseException as exc:
                    execute("ROLLBACK TO eddic_work")
                    item.error = exc
                execute("RELEASE eddic_work")

    @staticmethod
    def _fail(batch: list[_Work[Any]], exc: BaseException) -> None:
        for item in batch:
            if item.error is None:
                item.error = exc


class _Failed(Exception):
    """A piece of a shared batch raised: the batch is redone with savepoints."""


_ALL: weakref.WeakSet[GroupCommit] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A child forked while a parent thread led a commit (or held the mutex) inherits that state
    # but not the thread: its first commit would queue behind a leader that never finishes.
    for group in list(_ALL):
        group._reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
