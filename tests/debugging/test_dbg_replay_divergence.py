"""Replay with changed code: the divergence, field by field; and a replay writes nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eddic import (
    All,
    App,
    Publish,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    workflow,
)
from eddic.debug.replay import Divergence, Step
from eddic.testing import FrozenClock, WorkflowEnvironment

ran: list[str] = []


@activity
def dv_fetch(key: str) -> str:
    ran.append(f"fetch {key}")
    return key.upper()


@activity
def dv_store(key: str, value: str) -> int:
    ran.append(f"store {key}")
    return len(value)


@workflow
def dv_flow(ctx: WorkflowContext, key: str) -> int:
    value = yield dv_fetch(key)
    yield Sleep(10)
    size = yield dv_store(key, value)
    return size


@pytest.fixture
def changed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Swap the workflow's code, as a deploy would; undone after the test."""

    def swap(wf: Any, func: Any) -> None:
        monkeypatch.setattr(wf, "func", func)

    return swap


def replay_until_divergence(env: WorkflowEnvironment, iid: str) -> tuple[list[Step], Divergence]:
    replay = env.replay(iid)
    steps = list(replay)
    assert replay.divergence is not None, "expected the replay to diverge"
    assert steps[-1].divergence is replay.divergence
    return steps, replay.divergence


def test_a_different_command_at_a_seq_is_reported_field_by_field(
    eddic_env: WorkflowEnvironment, changed: Any
) -> None:
    iid = eddic_env.start(dv_flow, input="k1")

    def now_stores_first(ctx: WorkflowContext, key: str) -> Any:
        yield dv_fetch(key)
        yield dv_store(key, "early")
        yield Sleep(10)

    changed(dv_flow, now_stores_first)
    steps, divergence = replay_until_divergence(eddic_env, iid)
    assert [(s.seq, s.state) for s in steps] == [(1, "completed"), (2, "diverged")]
    assert divergence.seq == 2
    assert divergence.recorded == {
        "seq": 2,
        "kind": "timer",
        "name": "sleep",
        "args": {"seconds": 10.0},
    }
    assert divergence.now == {
        "seq": 2,
        "kind": "activity",
        "name": "dv_store",
        "args": {"key": "k1", "value": "early"},
    }
    differing = {d.field: (d.recorded, d.now) for d in divergence.fields if d.differs}
    assert differing == {
        "kind": ("timer", "activity"),
        "name": ("sleep", "dv_store"),
        "args": ({"seconds": 10.0}, {"key": "k1", "value": "early"}),
    }
    assert steps[-1].command == dv_store("k1", "early")
    assert steps[-1].record is not None and steps[-1].record.kind == "timer"


def test_the_report_names_the_instance_the_seq_both_sides_and_the_likely_cause(
    eddic_env: WorkflowEnvironment, changed: Any
) -> None:
    iid = eddic_env.start(dv_flow, input="k2")

    def now_sleeps_first(ctx: WorkflowContext, key: str) -> Any:
        yield Sleep(10)

    changed(dv_flow, now_sleeps_first)
    _steps, divergence = replay_until_divergence(eddic_env, iid)
    report = divergence.report()
    assert f"instance {iid} diverges at seq 1" in report
    assert "recorded: activity 'dv_fetch' at seq 1" in report
    assert "now:      timer 'sleep' at seq 1" in report
    lines = report.splitlines()
    assert any(line.split()[:4] == ["kind", "activity", "!=", "timer"] for line in lines)
    assert any(line.split()[:4] == ["name", "dv_fetch", "!=", "sleep"] for line in lines)
    assert any(line.split() == ["seq", "1", "1"] for line in lines)
    assert "code changed under a running instance" in " ".join(report.split())  # (wrapped)


def test_a_command_inserted_beside_a_recorded_one_diverges_at_its_seq(
    eddic_env: WorkflowEnvironment, changed: Any
) -> None:
    iid = eddic_env.start(dv_flow, input="k3")

    def now_fetches_two(ctx: WorkflowContext, key: str) -> Any:
        yield All(dv_fetch(key), dv_fetch(key + "-more"))
        yield Sleep(10)

    changed(dv_flow, now_fetches_two)
    _steps, divergence = replay_until_divergence(eddic_env, iid)
    assert divergence.seq == 2
    assert divergence.recorded is None  # history has no command there: it went on to an outcome
    assert divergence.now == {
        "seq": 2,
        "kind": "activity",
        "name": "dv_fetch",
        "args": {"key": "k3-more"},
    }
    assert "no command at seq 2" in divergence.recorded_text


def test_code_that_returns_early_diverges_at_the_first_recorded_command_it_skips(
    eddic_env: WorkflowEnvironment, changed: Any
) -> None:
    iid = eddic_env.start(dv_flow, input="k4")

    def now_returns_at_once(ctx: WorkflowContext, key: str) -> Any:
        yield dv_fetch(key)
        return 0

    changed(dv_flow, now_returns_at_once)
    steps, divergence = replay_until_divergence(eddic_env, iid)
    assert divergence.seq == 2 and divergence.now is None
    assert divergence.now_text == "has returned"
    assert steps[-1].command is None and steps[-1].kind == "timer"


def test_code_that_goes_on_after_a_finished_instance_ended_diverges(
    eddic_env: WorkflowEnvironment, changed: Any
) -> None:
    iid = eddic_env.start(dv_flow, input="k5")
    eddic_env.advance(10)
    assert eddic_env.status(iid) == "completed"

    def now_publishes_at_the_end(ctx: WorkflowContext, key: str) -> Any:
        value = yield dv_fetch(key)
        yield Sleep(10)
        yield dv_store(key, value)
        yield Publish("dv.stored")

    changed(dv_flow, now_publishes_at_the_end)
    _steps, divergence = replay_until_divergence(eddic_env, iid)
    assert divergence.seq == 4 and divergence.recorded is None
    assert divergence.now is not None and divergence.now["kind"] == "publish"
    assert "the instance ended completed" in divergence.recorded_text


def test_code_that_now_fails_where_the_instance_completed_diverges_on_the_outcome(
    eddic_env: WorkflowEnvironment, changed: Any
) -> None:
    iid = eddic_env.start(dv_flow, input="k6")
    eddic_env.advance(10)

    def now_raises_at_the_end(ctx: WorkflowContext, key: str) -> Any:
        value = yield dv_fetch(key)
        yield Sleep(10)
        yield dv_store(key, value)
        raise LookupError("changed my mind")

    changed(dv_flow, now_raises_at_the_end)
    _steps, divergence = replay_until_divergence(eddic_env, iid)
    assert {d.field: (d.recorded, d.now) for d in divergence.fields} == {
        "outcome": ("completed", "failed")
    }
    assert "LookupError: changed my mind" in divergence.now_text


@compensation
def dv_undo(key: str) -> None:
    ran.append(f"undo {key}")


@compensation
def dv_undo_differently(key: str) -> None:
    ran.append(f"undo differently {key}")


@activity
@on_failure(dv_undo)
def dv_claim(key: str) -> str:
    return key


@activity
def dv_refuse(key: str) -> str:
    raise PermissionError(key)


@workflow
def dv_saga(ctx: WorkflowContext, key: str) -> None:
    yield dv_claim(key)
    yield dv_refuse(key)


def test_a_changed_compensation_diverges_as_a_compensation(
    eddic_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    iid = eddic_env.start(dv_saga, input="k7")
    assert eddic_env.status(iid) == "failed"
    monkeypatch.setattr(dv_claim, "compensation", dv_undo_differently)
    _steps, divergence = replay_until_divergence(eddic_env, iid)
    assert divergence.seq == 3
    assert divergence.recorded is not None and divergence.now is not None
    assert (divergence.recorded["kind"], divergence.recorded["name"]) == ("compensation", "dv_undo")
    assert (divergence.now["kind"], divergence.now["name"]) == (
        "compensation",
        "dv_undo_differently",
    )


def test_the_unchanged_code_replays_without_divergence(eddic_env: WorkflowEnvironment) -> None:
    iid = eddic_env.start(dv_flow, input="k8")
    replay = eddic_env.replay(iid)
    assert [s.state for s in replay] == ["completed", "pending"]
    assert replay.divergence is None


# -- a replay writes nothing --------------------------------------------------------------------


@workflow
def dv_talkative(ctx: WorkflowContext, key: str) -> str:
    value = yield dv_fetch(key)
    yield Publish("dv.fetched", data={"value": value})
    event = yield WaitEvent("dv.go", timeout=60)
    yield dv_store(key, event.data["v"])
    return str(value)


@pytest.fixture
def file_app(tmp_path: Path) -> Iterator[App]:
    with FrozenClock("2026-02-01T00:00:00Z"), App(db_url=f"sqlite:///{tmp_path / 'dv.db'}") as app:
        yield app


def digest(path: Path) -> dict[str, str]:
    """The database file and its write-ahead log (the -shm index is scratch space for readers)."""
    out = {}
    for name in (path.name, path.name + "-wal"):
        file = path.parent / name
        out[name] = hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else "absent"
    return out


def test_a_replay_leaves_the_database_byte_for_byte_unchanged_and_runs_nothing(
    file_app: App, tmp_path: Path
) -> None:
    waiting = file_app.start(dv_talkative, input="w")
    done = file_app.start(dv_talkative, input="d")
    file_app.send_event("dv.go", data={"v": "x"}, instance_id=done)
    assert file_app.get_instance(done)["status"] == "completed"
    before = digest(tmp_path / "dv.db")
    ran.clear()
    for iid in (waiting, done):
        assert all(not step.diverged for step in file_app.replay(iid))
    assert ran == []  # no activity ran
    assert digest(tmp_path / "dv.db") == before
    assert file_app.get_instance(waiting)["status"] == "waiting_for_event"


def test_a_replay_from_a_fresh_app_leaves_a_closed_database_unchanged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'closed.db'}"
    with FrozenClock("2026-02-01T00:00:00Z"):
        with App(db_url=url) as app:
            iid = app.start(dv_talkative, input="c")
        before = digest(tmp_path / "closed.db")
        with App(db_url=url) as other:
            steps = list(other.replay(iid))
            history = other.history(iid)
        assert [s.state for s in steps] == ["completed", "completed", "pending"]
    assert digest(tmp_path / "closed.db") == before
    assert len(history) == 5  # and nothing was appended
