"""Values go through an adapter's pydantic-core methods directly (``serde.core_of``) when it
has plain ones, and through the adapter's own methods when it has not: the results are the
same either way, for the values a workflow passes, on both paths."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, TypeAdapter

from eddic import App, CallActivity, WorkflowContext, activity, workflow
from eddic.serde import adapter_for, core_of, dump_json_data, validate_as

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class Line(BaseModel):
    sku: str
    qty: int
    at: datetime


class Deferred(BaseModel):
    """Its schema is built on first use: its adapter has no core methods to call directly."""

    model_config = ConfigDict(defer_build=True)
    sku: str
    qty: int


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (Line, {"sku": "A", "qty": "2", "at": "2026-03-01T12:00:00Z"}),
        (list[int], (1, "2", 3)),
        (datetime, "2026-03-01T12:00:00+00:00"),
        (dict[str, float], {"a": 1}),
        (Any, {"nested": [1, {"x": None}]}),
    ],
)
def test_the_core_path_gives_what_the_adapter_gives(annotation: Any, value: Any) -> None:
    adapter = adapter_for(annotation)
    assert core_of(adapter) is not None
    valid = validate_as(adapter, value)
    assert valid == adapter.validate_python(value)
    assert type(valid) is type(adapter.validate_python(value))
    assert dump_json_data(adapter, valid) == adapter.dump_python(valid, mode="json")


def test_an_adapter_without_core_methods_is_used_as_it_is() -> None:
    adapter = TypeAdapter(Deferred)
    assert core_of(adapter) is None
    valid = validate_as(adapter, {"sku": "B", "qty": "3"})
    assert valid == Deferred(sku="B", qty=3)
    assert dump_json_data(adapter, valid) == {"sku": "B", "qty": 3}


@activity
def sc_pick(line: Line, extra: Deferred) -> Deferred:
    return Deferred(sku=line.sku + extra.sku, qty=line.qty + extra.qty)


@workflow
def sc_order(ctx: WorkflowContext, qty: int) -> dict[str, Any]:
    line = Line(sku="A", qty=qty, at=T0)
    picked = yield CallActivity(sc_pick, line, Deferred(sku="B", qty=1))
    assert isinstance(picked, Deferred)
    return {"sku": picked.sku, "qty": picked.qty}


@pytest.mark.both_backends
def test_activities_with_both_kinds_of_adapter_run_and_replay(app: App) -> None:
    iid = app.start(sc_order, input=2)
    assert app.result(iid) == {"sku": "AB", "qty": 3}
    history = app.storage.history(iid)
    assert any(r.get("args") and r["args"]["extra"] == {"sku": "B", "qty": 1} for r in history)
    replay = app.replay(iid)  # the values rebuilt from their JSON, through the same adapters
    steps = list(replay)
    assert [s.state for s in steps] == ["completed"]
    assert steps[0].value == Deferred(sku="AB", qty=3)
    assert replay.divergence is None and replay.result == {"sku": "AB", "qty": 3}
