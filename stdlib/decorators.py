"""``@workflow``, ``@activity``, ``@compensation``, ``@on_failure`` and the process-wide registry.

Decorating registers by name at import time, so any ``App`` in any process can resume instances
of every workflow its process imported. Registering a *different* function under a taken name
raises; re-registering the same one (same module and qualified name, as on a module reload)
replaces it.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from pydantic import TypeAdapter

from . import validate
from .errors import SerializationError
from .kernel import CallActivity, UnknownWorkflow
from .retry import COMPENSATION_RETRY, NO_RETRY, RetryPolicy
from .serde import adapter_for, dump_json_data, type_hints, validate_as

F = TypeVar("F", bound=Callable[..., Any])

_WORKFLOWS: dict[str, Workflow[Any]] = {}
_ACTIVITIES: dict[str, Activity] = {}


def _register(table: dict[str, Any], what: str, item: Any) -> None:
    _check_free(table, what, item.name, item.func)
    table[item.name] = item


def _check_free(table: dict[str, Any], what: str, name: Any, func: Any) -> None:
    """``ValueError`` when ``name`` is registered by a different function than ``func``."""
    old = table.get(name) if isinstance(name, str) else None
    if old is not None and _origin(old.func) != _origin(func):
        raise ValueError(
            f"{what} name {name!r} is already registered by {_origin(old.func)}; "
            f"pass name=... to register {_origin(func)} under another name"
        )


def _name_of(func: Any, name: str | None, what: str) -> str:
    """The name to register ``func`` under: ``name`` (checked) or the function's own."""
    if name is not None:
        return validate.name(name, f"{what} name")
    own = getattr(func, "__name__", None)
    if not isinstance(own, str) or not own:
        raise TypeError(f"{what} {func!r} has no __name__: pass name=...")
    return own


def _kind(func: Any) -> str:
    """``"generator"``, ``"coroutine"``, ``"async generator"`` or ``"plain"`` (decorators
    around the function are looked through)."""
    try:
        target = inspect.unwrap(func)
    except ValueError:  # a __wrapped__ cycle
        target = func
    for candidate in (func, target):
        if inspect.isgeneratorfunction(candidate):
            return "generator"
        if inspect.iscoroutinefunction(candidate):
            return "coroutine"
        if inspect.isasyncgenfunction(candidate):
            return "async generator"
    return "plain"


def _signature(func: Any, what: str) -> inspect.Signature:
    if not callable(func):
        raise TypeError(f"@{what} decorates a function, got {func!r}")
    try:
        return inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"@{what} cannot read the signature of {func!r}: {exc}") from None


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
        timeout: float | None = None,
        heartbeat_timeout: float | None = None,
    ) -> None:
        what = "compensation" if is_compensation else "activity"
        self.signature = _signature(func, what)
        self.func = func
        self.name = _name_of(func, name, what)
        # Bounds on each attempt (design §7): its whole run, and the silence between heartbeats.
        self.timeout: float | None = validate.seconds(
            timeout, f"timeout of {what} {self.name!r}", allow_zero=False, allow_none=True
        )
        self.heartbeat_timeout: float | None = validate.seconds(
            heartbeat_timeout,
            f"heartbeat_timeout of {what} {self.name!r}",
            allow_zero=False,
            allow_none=True,
        )
        kind = _kind(func)
        if kind in ("generator", "async generator"):
            raise TypeError(
                f"{what} {self.name!r} is {'an' if kind[0] == 'a' else 'a'} {kind} function: an "
                f"{what} returns its result (`return value`), it does not yield; a function "
                "that yields commands is a @workflow"
            )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry of {what} {self.name!r} must be a RetryPolicy, got {retry!r}")
        self.is_compensation = is_compensation
        self.retry = retry or (COMPENSATION_RETRY if is_compensation else NO_RETRY)
        self.is_async = kind == "coroutine"
        self.takes_ctx = _takes_ctx(self.signature)
        params = list(self.signature.parameters.values())
        self.params = params[1:] if self.takes_ctx else params
        self.call_signature = self.signature.replace(parameters=self.params)
        self._names = tuple(p.name for p in self.params)
        self._simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in self.params)
        hints = type_hints(func)
        self.param_adapters: dict[str, TypeAdapter[Any]] = {
            p.name: adapter_for(_bound_type(p, hints.get(p.name, p.annotation)))
            for p in self.params
        }
        self._untyped = frozenset(
            p.name for p in self.params if hints.get(p.name, p.annotation) in (p.empty, Any)
        )
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

    def _validated(self, name: str, value: Any) -> tuple[TypeAdapter[Any], Any]:
        adapter = self.param_adapters[name]
        try:
            return adapter, validate_as(adapter, value)
        except Exception as exc:
            raise SerializationError(
                f"argument {name!r} of activity {self.name!r} does not match its declared "
                f"type: {type(exc).__name__}: {exc}"
            ) from None

    def arguments_json(self, named: Mapping[str, Any]) -> dict[str, Any]:
        """Bound arguments as JSON-compatible data to record, each validated by its parameter's
        type first (a dict for a model becomes that model, then its JSON: no serializer warning);
        ``SerializationError`` naming the argument that does not fit or cannot be dumped."""
        out: dict[str, Any] = {}
        for name, value in named.items():
            # Validating costs about as little as a dump (a fast path that dumps first and
            # validates only on a mismatch, with warnings="error", costs three times more).
            adapter, valid = self._validated(name, value)
            try:
                out[name] = dump_json_data(adapter, valid)
            except Exception as exc:
                raise SerializationError(
                    f"argument {name!r} of activity {self.name!r} cannot be serialised to "
                    f"JSON: {type(exc).__name__}: {exc}"
                ) from None
        return out

    def own_arguments(self, named: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments one attempt receives: its own copies, so that mutating them changes
        neither the workflow's objects nor another attempt's. A typed argument is rebuilt from
        its JSON text (what was recorded, as a replay would see it); an untyped one, which
        keeps the type the workflow gave it, is deep-copied."""
        out: dict[str, Any] = {}
        for name, value in named.items():
            adapter, valid = self._validated(name, value)
            try:
                if name in self._untyped:
                    out[name] = copy.deepcopy(valid)
                else:
                    out[name] = adapter.validate_json(adapter.dump_json(valid))
            except Exception as exc:
                raise SerializationError(
                    f"argument {name!r} of activity {self.name!r} cannot be copied through its "
                    f"JSON: {type(exc).__name__}: {exc}"
                ) from None
        return out

    def arguments_from(
        self, recorded: Mapping[str, Any], named: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``own_arguments`` from what ``arguments_json`` recorded for this call: a typed
        argument is validated afresh from its JSON data (a new object, as a replay rebuilds
        it), which costs one validation instead of a dump and two."""
        try:
            untyped = self._untyped
            return {
                name: copy.deepcopy(value)
                if name in untyped
                else validate_as(self.param_adapters[name], recorded[name])
                for name, value in named.items()
            }
        except Exception:  # a type that only its JSON text rebuilds (strict, say): the long way
            return self.own_arguments(named)

    def call_args(self, named: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """``(args, kwargs)`` to call the function with, from arguments by parameter name
        (positional-only and variadic parameters passed as they are declared)."""
        if self._simple:
            return (), dict(named)
        bound = inspect.BoundArguments(self.call_signature, dict(named))
        return bound.args, bound.kwargs

    def compensate(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any], result: Any
    ) -> CallActivity | None:
        """The compensation call for a completed call with these arguments and this result.

        Built when the call completes, from copies of the values as they are then: the workflow
        changing its objects later (after the yield) changes nothing the compensation receives.
        """
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
        # Left as they are when they cannot be copied: running the compensation then fails
        # with that clear error.
        with contextlib.suppress(SerializationError):
            call = comp.own_arguments(call)
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


def _bound_type(param: inspect.Parameter, annotation: Any) -> Any:
    """The type of a parameter's bound value: ``*args: T`` binds a tuple of T, ``**kw: T`` a
    dict of T by name."""
    item = Any if annotation is inspect.Parameter.empty else annotation
    if param.kind is param.VAR_POSITIONAL:
        return tuple[item, ...]  # type: ignore[valid-type]
    if param.kind is param.VAR_KEYWORD:
        return dict[str, item]  # type: ignore[valid-type]
    return annotation


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
    """A registered workflow: a generator function (``yield`` each command) or an ``async def``
    function (``await`` each command), taking ``ctx`` and one input parameter.

    What it cannot run is refused here, at decoration time, with a ``TypeError``: something that
    is not a function, a plain function (a forgotten ``yield``), an async generator, or a
    signature other than ``(ctx)`` / ``(ctx, input)``.
    """

    def __init__(
        self, func: F, *, name: str | None = None, lock_timeout_seconds: float | None = None
    ) -> None:
        sig = _signature(func, "workflow")
        self.func = func
        self.name = _name_of(func, name, "workflow")
        self.lock_timeout_seconds = validate.seconds(
            lock_timeout_seconds, "lock_timeout_seconds", allow_zero=False, allow_none=True
        )
        kind = _kind(func)
        if kind == "plain":
            raise TypeError(
                f"workflow {self.name!r} is a plain function, neither a generator function nor "
                "an async def one: a workflow yields each command it waits on (`result = yield "
                "charge(order)`), or awaits it in an async def (`result = await "
                "charge(order)`); did you forget `yield`?"
            )
        if kind == "async generator":
            raise TypeError(
                f"workflow {self.name!r} is an async generator function (async def with "
                "yield); a workflow is a generator function (`def` with `yield`) or an async "
                "def function that awaits its commands"
            )
        self.is_async = kind == "coroutine"
        params = list(sig.parameters.values())
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        if not params or params[0].kind not in positional:
            raise TypeError(f"workflow {self.name!r} must take ctx as its first parameter")
        if len(params) > 1 and params[1].kind not in positional:
            raise TypeError(
                f"workflow {self.name!r} must take its one input as a positional parameter "
                f"after ctx, not {params[1]}"
            )
        extra = [
            p.name
            for p in params[2:]
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if extra:
            raise TypeError(
                f"workflow {self.name!r} takes ctx and one input, but also requires "
                f"{', '.join(extra)}; pass several values as one model or dict"
            )
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
        # A name taken by another function is reported before what is wrong with the function.
        _check_free(_WORKFLOWS, "workflow", name or getattr(f, "__name__", None), f)
        wf = Workflow(f, name=name, lock_timeout_seconds=lock_timeout_seconds)
        _register(_WORKFLOWS, "workflow", wf)
        return wf

    return wrap(func) if func is not None else wrap


@overload
def activity(func: Callable[..., Any], /) -> Activity: ...
@overload
def activity(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    heartbeat_timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Activity]: ...
def activity(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    heartbeat_timeout: float | None = None,
) -> Activity | Callable[[Callable[..., Any]], Activity]:
    """Register a function (``def`` or ``async def``) as an activity.

    ``timeout`` bounds each attempt, in seconds; ``heartbeat_timeout`` fails an attempt that
    goes longer than that without calling ``ctx.heartbeat()``. Either fails the attempt with
    :class:`~eddic.ActivityTimeout`, retried under ``retry`` like any other failure.
    """

    def wrap(f: Callable[..., Any]) -> Activity:
        act = Activity(
            f, name=name, retry=retry, timeout=timeout, heartbeat_timeout=heartbeat_timeout
        )
        _register(_ACTIVITIES, "activity", act)
        return act

    return wrap(func) if func is not None else wrap


@overload
def compensation(func: Callable[..., Any], /) -> Activity: ...
@overload
def compensation(
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    heartbeat_timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Activity]: ...
def compensation(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    heartbeat_timeout: float | None = None,
) -> Activity | Callable[[Callable[..., Any]], Activity]:
    """Register a compensation: an activity that undoes another (retried 5 times by default).
    ``timeout`` and ``heartbeat_timeout`` bound its attempts as they do an activity's."""

    def wrap(f: Callable[..., Any]) -> Activity:
        comp = Activity(
            f,
            name=name,
            retry=retry,
            is_compensation=True,
            timeout=timeout,
            heartbeat_timeout=heartbeat_timeout,
        )
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


def workflow_names() -> list[str]:
    """The names of the workflows registered in this process: the work its workers claim."""
    return list(_WORKFLOWS)
