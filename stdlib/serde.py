"""(De)serialisation through pydantic: one ``TypeAdapter`` per annotation, JSON text at rest.

Values cross into storage as JSON text and come back through the same adapter, so a replay sees
exactly the type the first run saw. The first run itself sends the round-tripped value, not the
raw one, so the two can never differ (a tuple becomes a list both times, a model stays a model).
"""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import SchemaSerializer, SchemaValidator, to_json

from .errors import SerializationError


@lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def adapter_for(annotation: Any) -> TypeAdapter[Any]:
    """The (cached) adapter for an annotation; ``Any`` for missing or unhashable ones."""
    if annotation is inspect.Parameter.empty or annotation is None:
        annotation = Any
    try:
        return _adapter(annotation)
    except TypeError:  # unhashable annotation
        return TypeAdapter(annotation)


class Core(typing.NamedTuple):
    """An adapter's pydantic-core methods, which its own methods call with these same defaults
    after a frame and a dozen keywords of their own (3-6k instructions a call, and a workflow
    makes about two dozen calls)."""

    validate_python: Callable[..., Any]
    to_python: Callable[..., Any]
    to_json: Callable[..., bytes]
    validate_json: Callable[..., Any]


_CORES: dict[TypeAdapter[Any], Core | None] = {}
# What validate_as and dump_json_data call for each adapter, learned once (``_learn``): one
# dict lookup in their own frame, as they run about two dozen times per workflow.
_VALIDATE: dict[TypeAdapter[Any], Callable[[Any], Any]] = {}
_DUMP_JSON_DATA: dict[TypeAdapter[Any], Callable[..., Any]] = {}


def core_of(adapter: TypeAdapter[Any]) -> Core | None:
    """``adapter``'s core methods; None when its validator or serializer is not a plain core
    one (a build deferred, a plugin's wrapper): then the adapter's own methods are called."""
    try:
        return _CORES[adapter]
    except KeyError:
        pass
    validator, serializer = adapter.validator, adapter.serializer
    core = None
    if type(validator) is SchemaValidator and type(serializer) is SchemaSerializer:
        core = Core(
            validator.validate_python,
            serializer.to_python,
            serializer.to_json,
            validator.validate_json,
        )
    _CORES[adapter] = core
    return core


def _learn(adapter: TypeAdapter[Any]) -> None:
    core = core_of(adapter)
    if core is None:
        _VALIDATE[adapter] = adapter.validate_python
        _DUMP_JSON_DATA[adapter] = adapter.dump_python
    else:
        _VALIDATE[adapter] = core.validate_python
        _DUMP_JSON_DATA[adapter] = core.to_python


def validate_as(adapter: TypeAdapter[Any], value: Any) -> Any:
    """``adapter.validate_python(value)``, through its core when it has a plain one."""
    try:
        validate = _VALIDATE[adapter]
    except KeyError:
        _learn(adapter)
        validate = _VALIDATE[adapter]
    return validate(value)


def dump_json_data(adapter: TypeAdapter[Any], value: Any) -> Any:
    """``adapter.dump_python(value, mode="json")``, through its core when it has a plain one."""
    try:
        dump = _DUMP_JSON_DATA[adapter]
    except KeyError:
        _learn(adapter)
        dump = _DUMP_JSON_DATA[adapter]
    return dump(value, mode="json")


_ANY = adapter_for(Any)


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (string annotations too); ``{}`` when they cannot be resolved."""
    try:
        return typing.get_type_hints(func)
    except Exception:
        return {}


def to_jsonable(value: Any, adapter: TypeAdapter[Any] = _ANY, *, what: str) -> Any:
    """``value`` as JSON-compatible Python data, or a ``SerializationError`` saying what failed."""
    try:
        return dump_json_data(adapter, value)
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be serialised to JSON: {type(exc).__name__}: {exc}"
        ) from None


def conform(value: Any, adapter: TypeAdapter[Any], *, what: str) -> Any:
    """``value`` validated as its declared type (a tuple for ``list[int]`` becomes a list)."""
    try:
        return validate_as(adapter, value)
    except Exception as exc:
        raise SerializationError(
            f"{what} does not match its declared type: {type(exc).__name__}: {exc}"
        ) from None


def from_jsonable(data: Any, adapter: TypeAdapter[Any] = _ANY, *, what: str) -> Any:
    try:
        return validate_as(adapter, data)
    except Exception as exc:
        raise SerializationError(
            f"{what} cannot be rebuilt from its stored JSON: {type(exc).__name__}: {exc}"
        ) from None


def dumps(data: Any) -> str:
    """Compact JSON text of JSON-compatible data (pydantic-core's encoder: 5x the stdlib's)."""
    return to_json(data).decode()


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)
