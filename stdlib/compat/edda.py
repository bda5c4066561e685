"""``eddic.compat.edda``: the names of Edda's tutorial *Your First Workflow*, running on eddic.

Edda code written like the tutorial runs here with only its imports changed
(``from edda import ...`` and ``from edda.outbox.transactional import ...`` become
``from eddic.compat.edda import ...``)::

    @activity
    @on_failure(refund_payment)
    async def process_payment(ctx: WorkflowContext, order_id: str, amount: float) -> dict: ...

    @workflow
    async def order_processing_workflow(ctx: WorkflowContext, input: OrderInput) -> OrderResult:
        payment = await process_payment(ctx, input.order_id, 10.0)   # Edda passes ctx first
        ...

    app = EddaApp(db_url="sqlite:///orders.db", service_name="order-service", outbox_enabled=True)
    await app.initialize()
    instance_id = await order_processing_workflow.start(input=order)
    instance = await app.storage.get_instance(instance_id)   # instance["output_data"]["order_id"]
    await app.shutdown()

It is built on eddic's public API alone (``from eddic import ...``; tests/test_layering.py pins
that), so every guarantee of eddic holds: the workflow's history, replay, compensation newest
first, the transactional outbox. Where Edda and eddic differ, Edda's behaviour as the tutorial
shows it wins:

- an activity is called with the workflow's ``ctx`` first (``await act(ctx, *args)``), and
  receives a context first too (eddic's ``ActivityContext``, whatever its first parameter is
  called);
- ``workflow.start(**params)`` takes the workflow's parameters by name, makes an Edda-style id
  (``<workflow name>-<uuid4 hex>``), runs the instance until it completes, fails or waits, and
  raises the workflow's exception when it failed (after its compensations ran), as Edda does;
  the exception an activity raised comes out as that very exception when it ran in this
  process;
- a failing workflow reports ``💥 <Type>: <message>`` on stdout before it compensates (the line
  the tutorial's Step 6 shows), never while it is being replayed;
- ``app.storage.get_instance(id)`` is a coroutine returning eddic's instance dict
  (``status``, ``output_data`` holding the result's fields, ...), or ``None`` for an unknown id.

What is not provided (Edda's ASGI/CloudEvents receiver, hooks, channels, ``wait_event``,
``sleep``, ...) is listed in docs/edda.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import typing
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

import pydantic

import eddic
from eddic import (
    ActivityContext,
    ActivityFailed,
    AsyncApp,
    CallActivity,
    Cancelled,
    InstanceNotFound,
    Publish,
    RetryPolicy,
    WorkflowContext,
    WorkflowFailed,
)

# The names the tutorial imports (the classes below are public too, for annotations).
__all__ = [
    "EddaApp",
    "WorkflowContext",
    "activity",
    "compensation",
    "on_failure",
    "send_event_transactional",
    "workflow",
]

log = logging.getLogger("eddic.compat.edda")

K = TypeVar("K")
V = TypeVar("V")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class _Newest(Generic[K, V]):
    """A small thread-safe map that keeps its newest entries (activities run on threads)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def pop(self, key: K) -> V | None:
        with self._lock:
            return self._items.pop(key, None)


# The exception each activity of each instance raised last, in this process: what start()
# raises for a workflow that failed because of it (eddic hands the workflow an ActivityFailed).
_ACTIVITY_ERRORS: _Newest[tuple[str, str], Exception] = _Newest()
# The exception each instance's workflow code raised last, in this process.
_WORKFLOW_ERRORS: _Newest[str, Exception] = _Newest()


# -- activities and compensations -----------------------------------------------------------------


def _signature(func: Callable[..., Any], what: str) -> inspect.Signature:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"@{what} cannot read the signature of {func!r}: {exc}") from None


def _activity_body(func: Callable[..., Any], what: str) -> Callable[..., Any]:
    """The function eddic registers for an Edda activity: the same one, its first parameter
    (Edda's ``ctx``, of any name) presented to eddic as ``ctx`` so that it receives the
    activity context, and the exception it raises noted for ``start``."""
    if isinstance(func, (Activity, Workflow)):
        raise TypeError(f"@{what} decorates a function, and {func!r} is decorated already")
    if not callable(func):
        raise TypeError(f"@{what} decorates a function, got {func!r}")
    name = getattr(func, "__name__", repr(func))
    sig = _signature(func, what)
    params = list(sig.parameters.values())
    if not params or params[0].kind not in _POSITIONAL:
        raise TypeError(
            f"{what} {name!r} must take the context as its first parameter: Edda calls it as "
            f"`await {name}(ctx, ...)` (`async def {name}(ctx: WorkflowContext, ...)`)"
        )
    if params[0].name != "ctx" and "ctx" in sig.parameters:
        raise TypeError(
            f"{what} {name!r}: its first parameter receives the context, so no later one may "
            "be called `ctx`"
        )
    signature = sig.replace(parameters=[params[0].replace(name="ctx"), *params[1:]])
    body: Callable[..., Any]
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(ctx: ActivityContext, /, *args: Any, **kwargs: Any) -> Any:
            try:
                return await func(ctx, *args, **kwargs)
            except Exception as exc:
                _ACTIVITY_ERRORS.put((ctx.instance_id, name), exc)
                raise

        body = run_async
    else:

        @functools.wraps(func)
        def run(ctx: ActivityContext, /, *args: Any, **kwargs: Any) -> Any:
            try:
                return func(ctx, *args, **kwargs)
            except Exception as exc:
                _ACTIVITY_ERRORS.put((ctx.instance_id, name), exc)
                raise

        body = run
    typing.cast(Any, body).__signature__ = signature  # what eddic reads (inspect.signature)
    return body


class Activity:
    """An Edda ``@activity`` (or ``@compensation``) registered with eddic.

    In a workflow, ``await reserve_inventory(ctx, order_id, items)`` runs it: the call returns
    eddic's ``CallActivity`` command for the arguments after ``ctx``. ``.eddic`` is the eddic
    activity itself (for ``eddic.testing`` overrides, ``All``/``First`` and the like).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        retry_policy: RetryPolicy | None = None,
        is_compensation: bool = False,
    ) -> None:
        what = "compensation" if is_compensation else "activity"
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"retry_policy of {what} {getattr(func, '__name__', func)!r} must be an "
                f"eddic.RetryPolicy, got {retry_policy!r}"
            )
        body = _activity_body(func, what)
        register = eddic.compensation if is_compensation else eddic.activity
        functools.update_wrapper(self, func)
        self.eddic: Any = register(retry=retry_policy)(body)
        self.name: str = self.eddic.name
        self.func = func
        self.is_compensation = is_compensation

    def __repr__(self) -> str:
        kind = "compensation" if self.is_compensation else "activity"
        return f"<eddic.compat.edda {kind} {self.name!r}>"

    def __call__(self, ctx: Any, /, *args: Any, **kwargs: Any) -> CallActivity:
        if not isinstance(ctx, WorkflowContext):
            raise TypeError(
                f"{self!r} runs from a workflow, called with the workflow's ctx first: "
                f"`await {self.name}(ctx, ...)`; got {ctx!r} for ctx"
            )
        command: CallActivity = self.eddic(*args, **kwargs)
        return command


@overload
def activity(func: Callable[..., Any], /) -> Activity: ...
@overload
def activity(
    *, retry_policy: RetryPolicy | None = None
) -> Callable[[Callable[..., Any]], Activity]: ...
def activity(
    func: Callable[..., Any] | None = None, /, *, retry_policy: RetryPolicy | None = None
) -> Activity | Callable[[Callable[..., Any]], Activity]:
    """Edda's ``@activity`` (or ``@activity(retry_policy=eddic.RetryPolicy(...))``): one
    attempt unless a policy says otherwise, as in the tutorial's output."""

    def wrap(f: Callable[..., Any]) -> Activity:
        return Activity(f, retry_policy=retry_policy)

    return wrap(func) if func is not None else wrap


@overload
def compensation(func: Callable[..., Any], /) -> Activity: ...
@overload
def compensation(
    *, retry_policy: RetryPolicy | None = None
) -> Callable[[Callable[..., Any]], Activity]: ...
def compensation(
    func: Callable[..., Any] | None = None, /, *, retry_policy: RetryPolicy | None = None
) -> Activity | Callable[[Callable[..., Any]], Activity]:
    """Edda's ``@compensation``: a function that undoes an activity, attached to it with
    ``@on_failure``; it receives the activity's arguments by name (eddic retries it 5 times by
    default)."""

    def wrap(f: Callable[..., Any]) -> Activity:
        return Activity(f, retry_policy=retry_policy, is_compensation=True)

    return wrap(func) if func is not None else wrap


def on_failure(comp: Activity) -> Callable[[Any], Any]:
    """Edda's ``@on_failure(compensation)``, above or below ``@activity``: when the workflow
    fails after the activity completed, the compensation runs (newest first)."""
    if not isinstance(comp, Activity):
        raise TypeError(
            f"on_failure takes a function decorated with @compensation of eddic.compat.edda, "
            f"got {comp!r}"
        )
    attach = eddic.on_failure(comp.eddic)

    def wrap(target: Any) -> Any:
        if isinstance(target, Activity):
            attach(target.eddic)
        elif callable(target) and not isinstance(target, Workflow):
            attach(target)  # @activity, applied next, takes the compensation along
        else:
            raise TypeError(f"@on_failure decorates an activity, got {target!r}")
        return target

    return wrap


# -- workflows ------------------------------------------------------------------------------------


def _note_workflow_failure(ctx: WorkflowContext, exc: Exception) -> None:
    """The workflow's code raised ``exc``: kept for ``start``, and reported as the tutorial's
    Step 6 shows it (not while replaying, and not for a cancel)."""
    _WORKFLOW_ERRORS.put(ctx.instance_id, exc)
    if ctx.is_replaying or isinstance(exc, Cancelled):
        return
    if isinstance(exc, ActivityFailed):  # the type and message the activity raised
        text = f"{exc.type}: {exc.message}"
    else:  # the type named as a traceback's last line names it
        cls = type(exc)
        module = cls.__module__
        name = (
            cls.__qualname__
            if module in ("builtins", "__main__")
            else f"{module}.{cls.__qualname__}"
        )
        text = f"{name}: {exc}"
    print(f"💥 {text}", flush=True)


def _resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # a string annotation naming something out of reach: left as it is
        return {}


class Workflow:
    """An Edda ``@workflow`` registered with eddic: ``await wf.start(**params)``.

    An async def function taking ``ctx`` and any number of named parameters. With exactly one
    (like the tutorial's ``input: OrderInput``) the eddic instance's input is that value; with
    none it has no input; with several they are stored as one pydantic model of them, which
    the function receives spread out again. ``.eddic`` is the eddic workflow.
    """

    def __init__(
        self, func: Callable[..., Any], *, lock_timeout_seconds: float | None = None
    ) -> None:
        name = getattr(func, "__name__", repr(func))
        if isinstance(func, (Activity, Workflow)) or not inspect.iscoroutinefunction(func):
            raise TypeError(f"Workflow {name} must be an async function")
        sig = _signature(func, "workflow")
        params = list(sig.parameters.values())
        if not params or params[0].kind not in _POSITIONAL:
            raise TypeError(f"workflow {name!r} must take ctx as its first parameter")
        inputs = params[1:]
        unnamed = [
            str(p) for p in inputs if p.kind in (*_VARIADIC, inspect.Parameter.POSITIONAL_ONLY)
        ]
        if unnamed:
            raise TypeError(
                f"workflow {name!r}: Edda passes a workflow's parameters by name, so it cannot "
                f"take {unnamed[0]} (see docs/edda.md)"
            )
        functools.update_wrapper(self, func)
        self.func = func
        self.parameters = inspect.Signature(
            [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inputs]
        )
        self._spread: tuple[str, ...] | None = None  # parameter names, when stored as a model
        one = len(inputs) == 1 and inputs[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        body = self._one_input(func) if one or not inputs else self._model_input(func, inputs, sig)
        self.eddic: Any = eddic.workflow(lock_timeout_seconds=lock_timeout_seconds)(body)
        self.name: str = self.eddic.name

    @staticmethod
    def _one_input(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)  # eddic reads the function's own signature through this
        async def run(ctx: WorkflowContext, *args: Any) -> Any:
            try:
                return await func(ctx, *args)
            except Exception as exc:
                _note_workflow_failure(ctx, exc)
                raise

        return run

    def _model_input(
        self,
        func: Callable[..., Any],
        inputs: list[inspect.Parameter],
        sig: inspect.Signature,
    ) -> Callable[..., Any]:
        hints = _resolved_hints(func)
        fields: dict[str, Any] = {}
        for p in inputs:
            annotation = hints.get(p.name, Any if p.annotation is p.empty else p.annotation)
            fields[p.name] = (annotation, ... if p.default is p.empty else p.default)
        model = pydantic.create_model(f"{func.__name__}_input", **fields)
        names = tuple(p.name for p in inputs)
        self._spread = names

        async def run(ctx: WorkflowContext, input: Any) -> Any:
            try:
                return await func(ctx, **{n: getattr(input, n) for n in names})
            except Exception as exc:
                _note_workflow_failure(ctx, exc)
                raise

        returns = hints.get("return", sig.return_annotation)
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(run, attr, getattr(func, attr, None))
        run.__annotations__ = {"input": model}
        if returns is not inspect.Signature.empty:
            run.__annotations__["return"] = returns
        return run

    def __repr__(self) -> str:
        return f"<eddic.compat.edda workflow {self.name!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Edda's direct call: the workflow function itself (a coroutine to await)."""
        return self.func(*args, **kwargs)

    def _wanted(self) -> str:
        names = ", ".join(f"{p}=..." for p in self.parameters.parameters)
        return f"{self.name}.start({names})"

    def _input(self, kwargs: dict[str, Any]) -> Any:
        try:
            bound = self.parameters.bind(**kwargs)
        except TypeError as exc:
            raise TypeError(
                f"{self._wanted()} takes the workflow's parameters by name: {exc}"
            ) from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        if self._spread is not None:
            return values
        return next(iter(values.values()), None)

    async def start(
        self, *args: Any, lock_timeout_seconds: float | None = None, **kwargs: Any
    ) -> str:
        """Start an instance and run it until it completes, fails or waits; return its id.

        ``kwargs`` are the workflow's parameters (``start(input=order)``); ``instance_id=``
        (unless the workflow has a parameter of that name) gives the instance its id, and a
        start repeated with that id runs nothing again. Raises what the workflow raised when
        the instance failed (its compensations have run by then), as Edda does.
        """
        if args:
            raise TypeError(
                f"{self._wanted()} takes the workflow's parameters by name, not "
                f"{len(args)} positional argument(s)"
            )
        app = _current_app()
        instance_id: str | None = None
        if "instance_id" not in self.parameters.parameters:
            instance_id = kwargs.pop("instance_id", None)
        value = self._input(kwargs)
        if instance_id is None:
            instance_id = f"{self.name}-{uuid.uuid4().hex}"
        iid = await app.eddic.start(
            self.eddic, value, instance_id=instance_id, lock_timeout_seconds=lock_timeout_seconds
        )
        info = await app.eddic.get_instance(iid)
        if info["status"] == "failed":
            raise _failure_of(iid, info)
        return iid


def _failure_of(instance_id: str, info: dict[str, Any]) -> Exception:
    """What ``start`` raises for a failed instance: the workflow's own exception when its code
    ran in this process (for an activity's failure, the exception the activity raised), else
    ``eddic.WorkflowFailed`` built from the stored error."""
    raised = _WORKFLOW_ERRORS.pop(instance_id)
    if isinstance(raised, ActivityFailed):
        original = _ACTIVITY_ERRORS.get((instance_id, raised.activity))
        if (
            original is not None
            and str(original) == raised.message
            and raised.type.rpartition(".")[2] == type(original).__name__
        ):
            return original
        return raised
    if raised is not None:
        return raised
    error = info.get("error") or {}
    return WorkflowFailed(str(error.get("type", "?")), str(error.get("message", "")))


@overload
def workflow(func: Callable[..., Any], /) -> Workflow: ...
@overload
def workflow(
    *, event_handler: bool = False, lock_timeout_seconds: float | None = None
) -> Callable[[Callable[..., Any]], Workflow]: ...
def workflow(
    func: Callable[..., Any] | None = None,
    /,
    *,
    event_handler: bool = False,
    lock_timeout_seconds: float | None = None,
) -> Workflow | Callable[[Callable[..., Any]], Workflow]:
    """Edda's ``@workflow`` (or ``@workflow(lock_timeout_seconds=...)``)."""
    if event_handler:
        raise TypeError(
            "@workflow(event_handler=True) starts workflows from CloudEvents received by the "
            "EddaApp ASGI application, which eddic.compat.edda does not provide (docs/edda.md)"
        )

    def wrap(f: Callable[..., Any]) -> Workflow:
        return Workflow(f, lock_timeout_seconds=lock_timeout_seconds)

    return wrap(func) if func is not None else wrap


# -- the outbox -----------------------------------------------------------------------------------


async def send_event_transactional(
    ctx: Any,
    event_type: str,
    event_source: str,
    event_data: dict[str, Any] | pydantic.BaseModel,
    content_type: str = "application/json",
) -> str | None:
    """Publish an event through eddic's transactional outbox.

    In an activity or compensation (the tutorial's use) the event is committed together with
    its result (``ctx.publish``), and this returns ``None``; in a workflow it is eddic's
    ``Publish`` command, and this returns the event's id. The relay delivers it when the
    EddaApp has ``outbox_enabled=True`` and somewhere to send it (``broker_url``).
    """
    if content_type != "application/json":
        raise ValueError(
            f"send_event_transactional: eddic's outbox carries JSON data only, not "
            f"content_type={content_type!r}"
        )
    data: Any = event_data
    if isinstance(event_data, pydantic.BaseModel):
        data = event_data.model_dump(mode="json")
    if isinstance(ctx, ActivityContext):
        ctx.publish(event_type, data=data, source=event_source)
        return None
    if isinstance(ctx, WorkflowContext):
        event_id = await Publish(event_type, data=data, source=event_source)
        return str(event_id)
    raise TypeError(
        "send_event_transactional(ctx, ...) takes the ctx an activity, a compensation or a "
        f"workflow received, got {ctx!r}"
    )


# -- the app --------------------------------------------------------------------------------------

# Edda's EddaApp options that have no counterpart here: refused by name rather than ignored.
_EDDA_ONLY = (
    "hooks",
    "default_retry_policy",
    "message_retention_days",
    "pool_size",
    "max_overflow",
    "pool_timeout",
    "pool_recycle",
    "pool_pre_ping",
    "use_listen_notify",
    "notify_fallback_interval",
    "max_workflows_per_batch",
)
# Edda's SQLAlchemy URLs name an async driver; eddic's name the database only.
_DRIVERS = {
    "sqlite+aiosqlite://": "sqlite://",
    "postgresql+asyncpg://": "postgresql://",
    "postgresql+psycopg://": "postgresql://",
}

_current: EddaApp | None = None


def _current_app() -> EddaApp:
    if _current is None:
        raise RuntimeError(
            "Replay engine not initialized. "
            "Ensure EddaApp is properly initialized before starting workflows."
        )
    return _current


def _eddic_url(db_url: str) -> str:
    if not isinstance(db_url, str):
        raise TypeError(f"EddaApp(db_url=...) must be a string, got {db_url!r}")
    for prefix, plain in _DRIVERS.items():
        if db_url.lower().startswith(prefix):
            return plain + db_url[len(prefix) :]
    return db_url


def _app_options() -> frozenset[str]:
    """The keyword options of ``eddic.App`` (and ``AsyncApp``'s ``threads``) an EddaApp
    passes on."""
    names = set(inspect.signature(eddic.App).parameters) | {"threads"}
    return frozenset(names - {"db_url", "service_name", "outbox_enabled"})


class Storage:
    """``app.storage``: what the tutorial reads of an instance."""

    def __init__(self, app: AsyncApp) -> None:
        self._app = app

    async def get_instance(self, instance_id: str) -> dict[str, Any] | None:
        """eddic's instance dict (``status``, ``output_data``, ``input_data``, ``error``,
        ...), or ``None`` when there is no instance with this id (as Edda's storage)."""
        try:
            return await self._app.get_instance(instance_id)
        except InstanceNotFound:
            return None


class EddaApp:
    """Edda's ``EddaApp`` on an ``eddic.AsyncApp`` (``app.eddic``).

    ``service_name`` and ``db_url`` (``sqlite:///orders.db``; Edda's ``sqlite+aiosqlite://``
    and ``postgresql+asyncpg://`` spellings are accepted) go to eddic's ``App``, and so does
    ``outbox_enabled``; ``broker_url`` is where the outbox relay delivers (eddic's
    ``outbox_sink``: CloudEvents JSON posted to it). Without a ``broker_url`` events are kept
    in the outbox, pending. Any further keyword is an ``eddic.App`` option
    (``outbox_sink=``, ``default_lock_timeout_seconds=``, ...); Edda's options that have no
    counterpart (``hooks``, the pool settings, ...) raise ``TypeError``.

    ``initialize()`` opens the database, makes this the app ``workflow.start`` uses and runs
    eddic's worker loop in the background (timers, events, recovery of crashed instances, the
    outbox relay), as Edda's background tasks do; ``shutdown()`` stops it and closes the app.
    """

    def __init__(
        self,
        service_name: str,
        db_url: str,
        outbox_enabled: bool = False,
        broker_url: str | None = None,
        **options: Any,
    ) -> None:
        for name in options:
            if name in _EDDA_ONLY:
                raise TypeError(
                    f"EddaApp({name}=...): Edda's {name!r} is not provided by eddic.compat.edda "
                    "(docs/edda.md lists what is)"
                )
        unknown = sorted(set(options) - _app_options())
        if unknown:
            raise TypeError(
                f"EddaApp got unexpected keyword argument(s) {', '.join(unknown)}; it takes "
                "service_name, db_url, outbox_enabled, broker_url and eddic.App's options "
                f"({', '.join(sorted(_app_options()))})"
            )
        if not isinstance(outbox_enabled, bool):
            raise TypeError(
                f"EddaApp(outbox_enabled=...) must be True or False, got {outbox_enabled!r}"
            )
        if broker_url is not None:
            if not isinstance(broker_url, str) or not broker_url.lower().startswith(
                ("http://", "https://")
            ):
                raise ValueError(
                    f"EddaApp(broker_url=...) must be an http(s) URL, got {broker_url!r}"
                )
            if options.get("outbox_sink") is not None:
                raise ValueError("EddaApp takes broker_url or outbox_sink, not both")
            options["outbox_sink"] = broker_url
        self.service_name = service_name
        self.db_url = db_url
        self.outbox_enabled = outbox_enabled
        self.broker_url = broker_url
        self.eddic = AsyncApp(
            _eddic_url(db_url), service_name, outbox_enabled=outbox_enabled, **options
        )
        self.storage = Storage(self.eddic)
        self._serving: asyncio.Task[None] | None = None
        self._initialized = False

    def __repr__(self) -> str:
        return f"<EddaApp {self.service_name!r} on {self.db_url!r}>"

    async def initialize(self) -> None:
        """Open the database (create or migrate its schema), make this app the one
        ``workflow.start`` uses, and start the worker loop in the background. Idempotent."""
        global _current
        if self._initialized:
            return
        await self.eddic.initialize()
        self._initialized = True
        _current = self
        self._serving = asyncio.get_running_loop().create_task(self.eddic.serve())
        self._serving.add_done_callback(_serve_ended)

    async def shutdown(self) -> None:
        """Stop the background worker (after the steps in progress) and close the app."""
        global _current
        serving, self._serving = self._serving, None
        if serving is not None:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        if _current is self:
            _current = None
        self._initialized = False
        await self.eddic.shutdown()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        raise TypeError(
            "EddaApp as an ASGI application (receiving CloudEvents over HTTP) is not provided "
            "by eddic.compat.edda; see docs/edda.md"
        )


def _serve_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the EddaApp's background worker stopped", exc_info=task.exception())
