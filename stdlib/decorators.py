"""``@workflow``, ``@activity``, ``@compensation``, ``@on_failure`` and the process-wide registry.

Decorating registers by name at import time, so any ``App`` in any process can resume instances
of every workflow its process imported. Registering a *different* function under a taken name
raises; re-registering the same one (same module and qualified name, as on a module reload)
replaces it.
"""

from __future__ import annotations

import collections.abc
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from pydantic import TypeAdapter

from .kernel import CallActivity, UnknownWorkflow
from .retry import COMPENSATION_RETRY, NO_RETRY, RetryPolicy
from .serde import adapter_for, type_hints

F = TypeVar("F", bound=Callable[..., Any])

_WORKFLOWS: dict[str, Workflow[Any]] = {}
_ACTIVITIES: dict[str, Activity] = {}


def _register(table: dict[str, Any], what: str, item: Any) -> None:
    old = table.get(item.name)
    if old is not None and _origin(old.func) != _origin(item.func):
        raise ValueError(
            f"{what} name {item.name!r} is already registered by {_origin(old.func)}; "
            f"pass name=... to register {_origin(item.func)} under another name"
        )
    table[item.name] = item


def _origin(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _takes_ctx(sig: inspect.Signature) -> bool:
    params = list(sig.parameters.values())
    return bool(params) and params[0].name == "ctx"


class Activity:
    """A registered activity or compensation. Calling it in a workflow returns a command."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        is_compensation: bool = False,
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        self.is_compensation = is_compensation
        self.retry = retry or (COMPENSATION_RETRY if is_compensation else NO_RETRY)
        self.is_async = inspect.iscoroutinefunction(func)
        self.signature = inspect.signature(func)
        self.takes_ctx = _takes_ctx(self.signature)
        params = list(self.signature.parameters.values())
        self.params = params[1:] if self.takes_ctx else params
        self.call_signature = self.signature.replace(parameters=self.params)
        self._names = tuple(p.name for p in self.params)
        self._simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in self.params)
        hints = type_hints(func)
        self.param_adapters: dict[str, TypeAdapter[Any]] = {
            p.name: adapter_for(hints.get(p.name, p.annotation)) for p in self.params
        }
        self.result_adapter = adapter_for(hints.get("return", inspect.Parameter.empty))
        self.compensation: Activity | None = None
        comp = getattr(func, "__eddic_compensation__", None)
        if comp is not None:
            self.set_compensation(comp)
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        kind = "compensation" if self.is_compensation else "activity"
        return f"<eddic {kind} {self.name!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> CallActivity:
        return CallActivity(self, *args, **kwargs)

    def set_compensation(self, comp: Activity) -> None:
        check_compensation(self.func, comp)
        self.compensation = comp

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name (defaults applied); ``TypeError`` when they do not fit."""
        if self._simple and not kwargs and len(args) == len(self._names):
            return dict(zip(self._names, args, strict=True))
        try:
            bound = self.call_signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"bad arguments for activity {self.name!r}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    def compensate(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> CallActivity | None:
        """The compensation call for a completed call with these arguments and this result."""
        comp = self.compensation
        if comp is None:
            return None
        available = self.bind(args, kwargs)
        call: dict[str, Any] = {}
        for param in comp.params:
            if param.name in available:
                call[param.name] = available[param.name]
            elif param.name == "result":
                call["result"] = result
        return CallActivity(comp, **call)


def check_compensation(activity: Callable[..., Any], comp: Activity) -> None:
    """``TypeError`` unless every parameter ``comp`` needs can be bound from ``activity``'s."""
    sig = inspect.signature(activity)
    names = set(list(sig.parameters)[1:] if _takes_ctx(sig) else sig.parameters)
    for param in comp.params:
        if param.name in names or param.name == "result":
            continue
        if param.default is not inspect.Parameter.empty or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        raise TypeError(
            f"compensation {comp.name!r} needs parameter {param.name!r}, which activity "
            f"{getattr(activity, '__name__', activity)!r} does not have (a compensation gets "
            "the activity's arguments by name, plus `result`)"
        )


def _result_type(annotation: Any) -> Any:
    """What a workflow returns: ``R`` of ``Generator[Y, S, R]``; ``Any`` for other iterators."""
    origin = typing.get_origin(annotation)
    if origin in (collections.abc.Generator, typing.Generator):
        args = typing.get_args(annotation)
        return args[2] if len(args) == 3 else Any
    if origin in (collections.abc.Iterator, collections.abc.Iterable, typing.Iterator):
        return Any
    return annotation


class Workflow(Generic[F]):
    """A registered workflow: a generator function taking ``ctx`` and one input parameter."""

    def __init__(
        self, func: F, *, name: str | None = None, lock_timeout_seconds: float | None = None
    ) -> None:
        self.func = func
        self.name = name or func.__name__
        self.lock_timeout_seconds = lock_timeout_seconds
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        if not params:
            raise TypeError(f"workflow {self.name!r} must take ctx as its first parameter")
        self.input_param = params[1] if len(params) > 1 else None
        hints = type_hints(func)
        input_ann = (
            hints.get(self.input_param.name, self.input_param.annotation)
            if self.input_param
            else None
        )
        self.input_adapter = adapter_for(input_ann)
        self.result_adapter = adapter_for(
            _result_type(hints.get("return", inspect.Parameter.empty))
        )
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<eddic workflow {self.name!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


@overload
def workflow(func: F, /) -> Workflow[F]: ...
@overload
def workflow(
    *, name: str | None = None, lock_timeout_seconds: float | None = None
) -> Callable[[F], Workflow[F]]: ...
def workflow(
    func: F | None = None,
    /,
    *,
    name: str | None = None,
    lock_timeout_seconds: float | None = None,
) -> Workflow[F] | Callable[[F], Workflow[F]]:
    """Register a generator function as a workflow (``@workflow`` or ``@workflow(...)``)."""

    def wrap(f: F) -> Workflow[F]:
        wf = Workflow(f, name=name, lock_timeout_seconds=lock_timeout_seconds)
        _register(_WORKFLOWS, "workflow", wf)
        return wf

    return wrap(func) if func is not None else wrap


@overload
def activity(func: Callable[..., Any], /) -> Activity: ...
@overload
def activity(
    *, name: str | None = None, retry: RetryPolicy | None = None
) -> Callable[[Callable[..., Any]], Activity]: ...
def activity(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Activity | Callable[[Callable[..., Any]], Activity]:
    """Register a function (``def`` or ``async def``) as an activity."""

    def wrap(f: Callable[..., Any]) -> Activity:
        act = Activity(f, name=name, retry=retry)
        _register(_ACTIVITIES, "activity", act)
        return act

    return wrap(func) if func is not None else wrap


@overload
def compensation(func: Callable[..., Any], /) -> Activity: ...
@overload
def compensation(
    *, name: str | None = None, retry: RetryPolicy | None = None
) -> Callable[[Callable[..., Any]], Activity]: ...
def compensation(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
) -> Activity | Callable[[Callable[..., Any]], Activity]:
    """Register a compensation: an activity that undoes another (retried 5 times by default)."""

    def wrap(f: Callable[..., Any]) -> Activity:
        comp = Activity(f, name=name, retry=retry, is_compensation=True)
        _register(_ACTIVITIES, "activity", comp)
        return comp

    return wrap(func) if func is not None else wrap


def on_failure(comp: Activity) -> Callable[[Any], Any]:
    """Attach a compensation to an activity: run when a workflow that completed it fails."""
    if not isinstance(comp, Activity):
        raise TypeError(f"on_failure needs an @compensation (or @activity), got {comp!r}")

    def wrap(target: Any) -> Any:
        if isinstance(target, Activity):
            target.set_compensation(comp)
        else:
            check_compensation(target, comp)
            target.__eddic_compensation__ = comp
        return target

    return wrap


def get_workflow(name_or_workflow: str | Workflow[Any]) -> Workflow[Any]:
    if isinstance(name_or_workflow, Workflow):
        return name_or_workflow
    found = _WORKFLOWS.get(name_or_workflow)
    if found is None:
        known = ", ".join(sorted(_WORKFLOWS)) or "none"
        raise UnknownWorkflow(
            f"no workflow named {name_or_workflow!r} is registered in this process "
            f"(registered: {known}); import the module that defines it"
        )
    return found


def find_workflow(name: str) -> Workflow[Any] | None:
    return _WORKFLOWS.get(name)


def find_activity(name: str) -> Activity | None:
    return _ACTIVITIES.get(name)
