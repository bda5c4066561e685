"""``AsyncApp``: ``App``'s API as coroutines, for asyncio services (FastAPI, Starlette, aiohttp).

Every call that can block (a commit waits for an fsync or a server; ``start`` and
``send_event`` run the instance inline, activities included) runs on threads of the AsyncApp's
own, so the event loop never waits on eddic: a handler that awaits ``app.start(...)`` lets every
other task of the loop run meanwhile. ``wait`` polls without holding a thread, and ``serve`` runs
the worker loop on a thread of its own until the task awaiting it is cancelled or ``shutdown``
is awaited.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .. import validate
from ..debug.replay import Replay
from ..decorators import Workflow
from .app import App

T = TypeVar("T")

_FINISHED = ("completed", "failed", "cancelled")


class AsyncApp:
    """An :class:`App` (same arguments; ``app.app`` is it) whose methods are coroutines.

    ``threads`` bounds the calls running at once (each holds a thread while it runs; a call
    beyond them waits for one, without blocking the loop).
    """

    def __init__(self, *args: Any, threads: int = 8, **kwargs: Any) -> None:
        validate.count(threads, "threads", minimum=1)
        self.app = App(*args, **kwargs)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="eddic-async-app")
        self._serving: threading.Thread | None = None

    @property
    def storage(self) -> Any:
        return self.app.storage

    async def _call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args, **kwargs))

    # -- lifecycle --

    async def initialize(self) -> None:
        await self._call(self.app.initialize)

    async def shutdown(self) -> None:
        """Stop ``serve`` (after the steps in progress) and close the App."""
        serving = self._serving
        if serving is not None:
            self.app.stop()
            await asyncio.get_running_loop().run_in_executor(None, serving.join)
        await self._call(self.app.shutdown)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncApp:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    # -- the App's calls --

    async def start(
        self,
        workflow: Workflow[Any] | str,
        input: Any = None,
        *,
        instance_id: str | None = None,
        lock_timeout_seconds: float | None = None,
    ) -> str:
        """``App.start``: records the instance and runs it (on a thread) until it waits."""
        return await self._call(
            self.app.start,
            workflow,
            input,
            instance_id=instance_id,
            lock_timeout_seconds=lock_timeout_seconds,
        )

    async def submit(
        self,
        workflow: Workflow[Any] | str,
        input: Any = None,
        *,
        instance_id: str | None = None,
        lock_timeout_seconds: float | None = None,
    ) -> str:
        return await self._call(
            self.app.submit,
            workflow,
            input,
            instance_id=instance_id,
            lock_timeout_seconds=lock_timeout_seconds,
        )

    async def wait(self, instance_id: str, timeout: float | None = None) -> Any:
        """``App.wait``, polling without holding a thread: the result once it has finished
        (``WorkflowFailed`` raised), ``TimeoutError`` after ``timeout`` seconds."""
        limit = validate.seconds(timeout, "timeout", allow_none=True)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        pause = 0.002
        while (await self.get_instance(instance_id))["status"] not in _FINISHED:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                raise TimeoutError(f"instance {instance_id!r} did not finish in {limit} s")
            await asyncio.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 0.1)
        return await self.result(instance_id)

    async def result(self, instance_id: str) -> Any:
        return await self._call(self.app.result, instance_id)

    async def get_instance(self, instance_id: str) -> dict[str, Any]:
        return await self._call(self.app.get_instance, instance_id)

    async def list_instances(
        self,
        *,
        status: str | Sequence[str] | None = None,
        workflow: str | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        return await self._call(
            self.app.list_instances, status=status, workflow=workflow, limit=limit
        )

    async def history(self, instance_id: str, run: int | None = None) -> list[dict[str, Any]]:
        return await self._call(self.app.history, instance_id, run)

    async def replay(self, instance_id: str) -> Replay:
        return await self._call(self.app.replay, instance_id)

    async def send_event(
        self,
        event_type: str,
        data: Any = None,
        *,
        source: str | None = None,
        id: str | None = None,
        instance_id: str | None = None,
        inline: bool = True,
    ) -> list[str]:
        return await self._call(
            self.app.send_event,
            event_type,
            data,
            source=source,
            id=id,
            instance_id=instance_id,
            inline=inline,
        )

    async def cancel(
        self, instance_id: str, reason: str | None = None, *, inline: bool = True
    ) -> bool:
        return await self._call(self.app.cancel, instance_id, reason, inline=inline)

    async def retry(self, instance_id: str) -> bool:
        return await self._call(self.app.retry, instance_id)

    async def run_due(self, *, recover: bool = True) -> int:
        return await self._call(self.app.run_due, recover=recover)

    async def serve(self, *, threads: int = 1, idle_sleep_max: float | None = None) -> None:
        """``App.serve`` on a thread of its own, until the task awaiting this is cancelled (the
        steps in progress end first) or ``shutdown`` is awaited."""
        if self._serving is not None:
            raise RuntimeError("this AsyncApp is serving already")
        await self.initialize()
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                self.app.serve(threads=threads, idle_sleep_max=idle_sleep_max)
            except BaseException as exc:  # handed to the awaiting task
                failed.append(exc)

        thread = threading.Thread(target=serve, name="eddic-async-serve", daemon=True)
        self._serving = thread
        thread.start()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, thread.join)
        except asyncio.CancelledError:
            self.app.stop()
            await asyncio.shield(loop.run_in_executor(None, thread.join))
            raise
        finally:
            self._serving = None
        if failed:
            raise failed[0]


__all__ = ["AsyncApp"]
