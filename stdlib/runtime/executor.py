"""Running one attempt of an activity or compensation body, sync or async.

An attempt never raises what its body raised: every outcome, a ``BaseException`` that is not an
``Exception`` included (``SystemExit``, ``asyncio.CancelledError``, ...), comes back as an
:class:`Outcome` for the worker to record or to park the instance on. Only ``KeyboardInterrupt``,
the one explicit request for the process to stop, propagates.

``async def`` bodies run on one long-lived event loop per process (a daemon thread, started on
first use, stopped at interpreter exit), so an object an activity keeps between calls (a client,
a connection pool, a lock) stays bound to the loop it was made on.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import inspect
import os
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

from ..context import ActivityContext, PublishedEvent
from ..decorators import Activity
from ..errors import SerializationError
from ..kernel import CallActivity, Failure
from ..serde import conform, core_of, dumps, from_jsonable, to_jsonable


@dataclass
class Outcome:
    """The result of one attempt: JSON text to store and the value to send in, or a failure."""

    json: str | None = None
    value: Any = None
    error: BaseException | None = None
    published: list[PublishedEvent] | None = None

    @property
    def retryable(self) -> bool:
        error = self.error
        if error is None:
            return True
        # (De)serialisation and argument errors are bugs, not bad luck: never retried. Nor is a
        # BaseException that is not an Exception: the worker parks the instance on it.
        return isinstance(error, Exception) and not isinstance(
            error, (SerializationError, TypeError)
        )


class _ActivityLoop:
    """The process's event loop for ``async def`` activities, on a daemon thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._registered = False
        if hasattr(os, "register_at_fork"):  # a child has no loop thread, maybe a held lock
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._loop = self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None or self._pid != os.getpid() or not thread.is_alive():
                loop = asyncio.new_event_loop()  # after a fork, the parent's thread is gone
                thread = threading.Thread(
                    target=self._run, args=(loop,), name="eddic-async-activities", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
                if not self._registered:
                    atexit.register(self.close)
                    self._registered = True
            return loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def close(self) -> None:
        """Stop the loop, cancel what still runs on it and close it (at interpreter exit)."""
        with self._lock:
            loop, thread, pid = self._loop, self._thread, self._pid
            self._loop = self._thread = None
        if loop is None or thread is None or pid != os.getpid():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if thread.is_alive():  # a body blocks the loop: leave it to die with the process
            return
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


_LOOP = _ActivityLoop()


async def _guarded(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """``coro``'s outcome as a value: a ``SystemExit`` or ``KeyboardInterrupt`` raised in a task
    would otherwise stop the loop itself, and with it every other async activity."""
    try:
        return True, await coro
    except BaseException as exc:
        return False, exc


def _run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    if threading.current_thread() is _LOOP.thread:
        # An async activity that runs a workflow step synchronously (a nested start): its loop
        # is this thread, busy waiting on us. Finish on a private loop in a helper thread.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result()
    future = asyncio.run_coroutine_threadsafe(_guarded(coro), _LOOP.get())
    try:
        ok, value = future.result()
    except BaseException:  # interrupted while waiting: do not leave the body running
        future.cancel()
        raise
    if ok:
        return value
    raise value


def in_activity_loop() -> bool:
    """Whether the calling thread is the process's event loop for ``async def`` activities."""
    return threading.current_thread() is _LOOP.thread


def _arguments(
    act: Activity, command: CallActivity, recorded: Mapping[str, Any] | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    named = act.bind(command.args, command.kwargs)
    own = act.own_arguments(named) if recorded is None else act.arguments_from(recorded, named)
    return act.call_args(own)


def run_attempt(
    act: Activity,
    command: CallActivity,
    ctx: ActivityContext,
    recorded: Mapping[str, Any] | None = None,
) -> Outcome:
    """Run the body once: arguments rebuilt as their annotated types (the attempt's own copies,
    from ``recorded``, the arguments' JSON data as recorded, when the caller has it), result
    round-tripped through its JSON text, so the value sent in is the one a replay will
    rebuild. Returns every failure as ``Outcome.error``; raises only ``KeyboardInterrupt``."""
    try:  # _arguments, inline: this is every step's path
        named = act.bind(command.args, command.kwargs)
        own = act.own_arguments(named) if recorded is None else act.arguments_from(recorded, named)
        args, kwargs = act.call_args(own)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return Outcome(error=exc)
    try:
        produced = act.func(ctx, *args, **kwargs) if act.takes_ctx else act.func(*args, **kwargs)
        if isinstance(produced, CoroutineType):  # inspect.iscoroutine, without its frame
            produced = _run_coroutine(produced)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        return Outcome(error=exc, published=list(ctx._published))
    return _finish(act, ctx, produced)


def _finish(act: Activity, ctx: ActivityContext, produced: Any) -> Outcome:
    try:
        text, value = _round_trip(act, produced)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a SerializationError, or what a validator of the result raised
        return Outcome(error=exc)
    return Outcome(json=text, value=value, published=list(ctx._published))


def start_async_attempt(
    act: Activity,
    command: CallActivity,
    ctx: ActivityContext,
    recorded: Mapping[str, Any] | None = None,
) -> concurrent.futures.Future[Outcome]:
    """``run_attempt`` for an ``async def`` body, begun on the activity loop and not waited
    for: the future holds its outcome. Cancelling the future cancels the body's task."""
    done: concurrent.futures.Future[Outcome] = concurrent.futures.Future()
    try:
        args, kwargs = _arguments(act, command, recorded)
        coro = act.func(ctx, *args, **kwargs) if act.takes_ctx else act.func(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        done.set_result(Outcome(error=exc))
        return done
    if not inspect.iscoroutine(coro):  # an async-looking function that returned a value
        done.set_result(_finish(act, ctx, coro))
        return done
    task = asyncio.run_coroutine_threadsafe(_guarded(coro), _LOOP.get())

    def settle(f: concurrent.futures.Future[tuple[bool, Any]]) -> None:
        if done.cancelled():  # timed out and given up: nothing reads the outcome
            return
        if f.cancelled():
            done.set_result(Outcome(error=asyncio.CancelledError("the attempt was cancelled")))
            return
        ok, value = f.result()
        if ok:
            done.set_result(_finish(act, ctx, value))
        else:
            done.set_result(Outcome(error=value, published=list(ctx._published)))

    def cancel(f: concurrent.futures.Future[Outcome]) -> None:
        if f.cancelled():
            task.cancel()

    task.add_done_callback(settle)
    done.add_done_callback(cancel)
    return done


def _round_trip(act: Activity, produced: Any) -> tuple[str, Any]:
    adapter = act.result_adapter
    core = core_of(adapter)
    try:
        if core is not None:
            text = core.to_json(core.validate_python(produced)).decode()
            return text, core.validate_json(text)
        text = adapter.dump_json(adapter.validate_python(produced)).decode()
        return text, adapter.validate_json(text)
    except Exception:  # again, step by step, for an error that says which step failed
        what = f"the result of {act.name!r}"
        data = to_jsonable(conform(produced, adapter, what=what), adapter, what=what)
        value = from_jsonable(data, adapter, what=what)
        return dumps(data), value


def failure_of(error: BaseException, attempts: int) -> Failure:
    return Failure.from_exception(error, attempts)
