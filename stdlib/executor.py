"""Running one attempt of an activity or compensation body, sync or async."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from .context import ActivityContext, PublishedEvent
from .decorators import Activity
from .kernel import CallActivity, Failure
from .serde import SerializationError, conform, from_jsonable, to_jsonable


@dataclass
class Outcome:
    """The result of one attempt: JSON to store and the value to send in, or a failure."""

    json: Any = None
    value: Any = None
    error: BaseException | None = None
    published: list[PublishedEvent] | None = None

    @property
    def retryable(self) -> bool:
        # (De)serialisation and argument errors are bugs, not bad luck: never retried.
        return not isinstance(self.error, (SerializationError, TypeError))


def _run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop: finish on a private loop in a helper thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_attempt(act: Activity, command: CallActivity, ctx: ActivityContext) -> Outcome:
    """Run the body once: arguments rebuilt as their annotated types, result round-tripped."""
    try:
        named = act.bind(command.args, command.kwargs)
        call = {
            name: from_jsonable(value, act.param_adapters[name], what=f"argument {name!r}")
            for name, value in named.items()
        }
    except Exception as exc:
        return Outcome(error=exc)
    try:
        produced = act.func(ctx, **call) if act.takes_ctx else act.func(**call)
        if act.is_async:
            produced = _run_coroutine(produced)
    except Exception as exc:
        return Outcome(error=exc, published=list(ctx._published))
    try:
        what = f"the result of {act.name!r}"
        data = to_jsonable(
            conform(produced, act.result_adapter, what=what), act.result_adapter, what=what
        )
        for event in ctx._published:
            to_jsonable(event.data, what=f"data of event {event.event_type!r}")
        value = from_jsonable(data, act.result_adapter, what=f"the result of {act.name!r}")
    except SerializationError as exc:
        return Outcome(error=exc)
    return Outcome(json=data, value=value, published=list(ctx._published))


def failure_of(error: BaseException, attempts: int) -> Failure:
    return Failure.from_exception(error, attempts)
