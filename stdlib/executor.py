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
from .serde import SerializationError, conform, dumps, from_jsonable, to_jsonable


@dataclass
class Outcome:
    """The result of one attempt: JSON text to store and the value to send in, or a failure."""

    json: str | None = None
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
    """Run the body once: arguments rebuilt as their annotated types, result round-tripped
    through its JSON text, so the value sent in is the one a replay will rebuild."""
    try:
        call = _arguments(act, act.bind(command.args, command.kwargs))
    except Exception as exc:
        return Outcome(error=exc)
    try:
        produced = act.func(ctx, **call) if act.takes_ctx else act.func(**call)
        if act.is_async:
            produced = _run_coroutine(produced)
    except Exception as exc:
        return Outcome(error=exc, published=list(ctx._published))
    try:
        text, value = _round_trip(act, produced)
        for event in ctx._published:
            to_jsonable(event.data, what=f"data of event {event.event_type!r}")
    except SerializationError as exc:
        return Outcome(error=exc)
    return Outcome(json=text, value=value, published=list(ctx._published))


def _arguments(act: Activity, named: dict[str, Any]) -> dict[str, Any]:
    adapters = act.param_adapters
    try:
        return {name: adapters[name].validate_python(value) for name, value in named.items()}
    except Exception:  # again, one by one, for an error that names the argument
        return {
            name: from_jsonable(value, adapters[name], what=f"argument {name!r}")
            for name, value in named.items()
        }


def _round_trip(act: Activity, produced: Any) -> tuple[str, Any]:
    adapter = act.result_adapter
    try:
        text = adapter.dump_json(adapter.validate_python(produced)).decode()
        return text, adapter.validate_json(text)
    except Exception:  # again, step by step, for an error that says which step failed
        what = f"the result of {act.name!r}"
        data = to_jsonable(conform(produced, adapter, what=what), adapter, what=what)
        value = from_jsonable(data, adapter, what=what)
        return dumps(data), value


def failure_of(error: BaseException, attempts: int) -> Failure:
    return Failure.from_exception(error, attempts)
