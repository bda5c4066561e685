"""Leases, fencing, lock-timeout precedence, retries, and what recovery leaves alone."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

from eddic import (
    ActivityContext,
    ActivityFailed,
    App,
    RetryPolicy,
    Sleep,
    WorkflowContext,
    activity,
    workflow,
)
from eddic.decorators import _WORKFLOWS
from eddic.storage import LeaseLost, StepWrite

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
attempts_seen: list[tuple[int, str]] = []


@workflow(lock_timeout_seconds=42)
def lease_decorated(ctx: WorkflowContext, _: None = None) -> str:
    yield Sleep(10)
    return "done"


@workflow
def lease_plain(ctx: WorkflowContext, _: None = None) -> str:
    yield Sleep(10)
    return "done"


class Flaky(Exception):
    pass


class Fatal(Exception):
    pass


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=2, backoff=3, non_retryable=(Fatal,)))
def lease_flaky(ctx: ActivityContext, fail_times: int, fatal: bool = False) -> int:
    attempts_seen.append((ctx.attempt, ctx.idempotency_key))
    if fatal:
        raise Fatal("no point retrying")
    if ctx.attempt <= fail_times:
        raise Flaky(f"attempt {ctx.attempt}")
    return ctx.attempt


@workflow
def lease_retrying(ctx: WorkflowContext, spec: dict[str, int]) -> str:
    try:
        n = yield lease_flaky(spec["fail"], bool(spec.get("fatal")))
    except ActivityFailed as failure:
        return f"gave up after {failure.attempts}: {failure.type}"
    return f"succeeded on attempt {n}"


def lock_timeout(app: App, iid: str) -> float:
    with app.storage.reading() as db:
        row = db.execute(
            "SELECT lock_timeout_seconds FROM instances WHERE instance_id = ?", [iid]
        ).fetchone()
    return float(row[0]) if row[0] is not None else app.default_lock_timeout_seconds


def test_lock_timeout_resolves_start_argument_then_decorator_then_app_default(
    db_path: Path,
) -> None:
    with App(db_url=f"sqlite:///{db_path}", default_lock_timeout_seconds=7) as app:
        assert lock_timeout(app, app.start(lease_decorated, lock_timeout_seconds=5)) == 5
        assert lock_timeout(app, app.start(lease_decorated)) == 42
        assert lock_timeout(app, app.start(lease_plain)) == 7


def test_a_worker_whose_lease_was_taken_over_cannot_record_anything(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    with freeze_time(T0) as clock, App(db_url=url) as old, App(db_url=url) as new:
        iid = old.start(lease_plain)
        clock.tick(11)
        got = old.storage.acquire(iid, old.worker_id, T0 + timedelta(seconds=11), 1)
        assert got is not None
        stale_epoch = got[0]
        clock.tick(5)  # the old worker stalls past its 1 s lease; the new one takes over
        assert new.run_due() == 1
        assert new.get_instance(iid)["status"] == "completed"
        with pytest.raises(LeaseLost, match="lost its lease"):
            old.storage.commit_step(
                StepWrite(iid, old.worker_id, stale_epoch, columns={"status": "running"}),
                T0 + timedelta(seconds=16),
            )
        assert new.get_instance(iid)["status"] == "completed"


def test_a_failing_activity_is_retried_with_durable_backoff(app: App) -> None:
    attempts_seen.clear()
    with freeze_time(T0) as clock:
        iid = app.start(lease_retrying, input={"fail": 2})
        info = app.get_instance(iid)
        assert info["status"] == "waiting_for_timer"
        assert info["wake_at"] == T0 + timedelta(seconds=2)
        clock.tick(2)
        app.run_due()
        assert app.get_instance(iid)["wake_at"] == T0 + timedelta(seconds=2 + 6)
        clock.tick(6)
        app.run_due()
    assert app.result(iid) == "succeeded on attempt 3"
    assert [a for a, _ in attempts_seen] == [1, 2, 3]
    assert len({key for _, key in attempts_seen}) == 1  # one idempotency key for all attempts


def test_only_the_failure_after_the_last_attempt_reaches_the_workflow(app: App) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(lease_retrying, input={"fail": 5})
        for _ in range(3):
            clock.tick(100)
            app.run_due()
    assert app.result(iid) == "gave up after 3: test_leases.Flaky"


def test_a_non_retryable_error_fails_at_once(app: App) -> None:
    iid = app.start(lease_retrying, input={"fail": 0, "fatal": 1})
    assert app.result(iid) == "gave up after 1: test_leases.Fatal"


def test_backoff_survives_a_restart_without_losing_or_repeating_the_count(db_path: Path) -> None:
    attempts_seen.clear()
    url = f"sqlite:///{db_path}"
    with freeze_time(T0) as clock:
        with App(db_url=url) as first:
            iid = first.start(lease_retrying, input={"fail": 1})
        clock.tick(2)
        with App(db_url=url) as second:
            second.run_due()
            assert second.result(iid) == "succeeded on attempt 2"
    assert [a for a, _ in attempts_seen] == [1, 2]


def test_recovery_leaves_an_unregistered_workflow_alone_with_a_log_line(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    with freeze_time(T0) as clock:
        iid = app.start(lease_plain)
        saved = _WORKFLOWS.pop("lease_plain")
        try:
            clock.tick(60)
            with caplog.at_level(logging.WARNING, logger="eddic"):
                assert app.run_due() == 0
                assert app.run_due() == 0  # no hot loop: one line per interval
            assert sum("not registered" in r.message for r in caplog.records) == 1
            assert app.get_instance(iid)["status"] == "waiting_for_timer"
        finally:
            _WORKFLOWS["lease_plain"] = saved
        clock.tick(app.recovery_interval_seconds)
        app.run_due()
        assert app.result(iid) == "done"


@activity
def lease_slow(seconds: float) -> str:
    import time

    time.sleep(seconds)  # a real wait: the keeper thread renews in real time
    return "slow done"


@workflow(lock_timeout_seconds=0.3)
def lease_long(ctx: WorkflowContext, seconds: float) -> str:
    return (yield lease_slow(seconds))


def test_the_lease_is_renewed_while_a_long_activity_runs(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    renewals: list[str] = []
    with App(db_url=url) as app:
        real_renew = app.storage.renew

        def counting(iid: str, owner: str, epoch: int, expires: datetime) -> bool:
            renewals.append(iid)
            return real_renew(iid, owner, epoch, expires)

        app.storage.renew = counting  # type: ignore[method-assign]
        iid = app.start(lease_long, input=0.5)
        assert app.result(iid) == "slow done"
    assert len(renewals) >= 2  # every 0.1 s over 0.5 s


lease_left: list[float] = []
_lease_app: list[App] = []
_lease_clock: list[object] = []


@activity
def lease_look(ctx: ActivityContext) -> None:
    """Note how much of the lease is left as this step starts, then let 0.6 s pass."""
    expires = _lease_app[0].get_instance(ctx.instance_id)["lock_expires_at"]
    lease_left.append((expires - datetime.now(timezone.utc)).total_seconds())
    _lease_clock[0].tick(timedelta(seconds=0.6))  # type: ignore[attr-defined]


@workflow(lock_timeout_seconds=3)
def lease_many_steps(ctx: WorkflowContext, steps: int) -> int:
    for _ in range(steps):
        yield lease_look()
    return steps


def test_every_step_starts_with_more_than_a_third_of_the_lease_left(app: App) -> None:
    # Steps renew the lease only when less than two thirds of it is left; with 0.6 s per step
    # and a 3 s lease, a run that never renewed would lose it at the sixth step.
    lease_left.clear()
    with freeze_time(T0) as clock:
        _lease_app[:] = [app]
        _lease_clock[:] = [clock]
        iid = app.start(lease_many_steps, input=8)
        assert app.result(iid) == 8
    assert len(lease_left) == 8
    assert min(lease_left) > 1.0, lease_left
    assert max(lease_left) <= 3.0
    assert len(set(lease_left)) > 1  # not renewed at every step: it is left to run down


class _Renewals:
    """The one storage call a ``LeaseKeeper`` makes, noted with its monotonic time."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, float]] = []

    def renew(self, instance_id: str, owner: str, epoch: int, expires: datetime) -> bool:
        import time

        self.seen.append((instance_id, time.monotonic()))
        return True


def test_the_keeper_renews_a_shorter_lease_in_time_and_a_longer_one_without_waking() -> None:
    # hold() takes no lock unless a timeout is shorter than any before: the keeper never sleeps
    # past a third of the shortest, so holds that are no shorter are renewed in time anyway.
    import time

    from eddic.runtime.leases import LeaseKeeper

    renewals = _Renewals()
    keeper = LeaseKeeper(renewals)  # type: ignore[arg-type]
    try:
        long = keeper.hold("long", "w", 1, 30.0)  # the keeper's period: 10 s
        began = time.monotonic()
        short = keeper.hold("short", "w", 1, 0.6)  # shorter: wakes it, period 0.2 s
        same = keeper.hold("same", "w", 1, 0.6)  # no shorter: taken without a wake
        time.sleep(1.0)
        keeper.release(short)
        keeper.release(same)
        keeper.release(long)
        after = len(renewals.seen)
        time.sleep(0.4)
    finally:
        keeper.stop()
    firsts = {iid: at - began for iid, at in reversed(renewals.seen)}
    assert set(firsts) == {"short", "same"}  # the 30 s lease is not due within the test
    assert firsts["short"] < 0.6 and firsts["same"] < 0.6  # due at 0.2 s: long before expiry
    assert sum(iid == "short" for iid, _ in renewals.seen) >= 3  # every 0.2 s over 1 s
    assert len(renewals.seen) == after  # released: renewed no more


def test_the_keeper_warns_of_a_lease_taken_over_but_not_of_one_its_step_let_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A renewal that finds the lease gone is a takeover, unless the hold was released while the
    # renewal ran: the step committed and let the lease go (or renewed it) meanwhile.
    import time

    from eddic.runtime.leases import LeaseKeeper

    keeper: LeaseKeeper

    class Gone:
        def renew(self, instance_id: str, owner: str, epoch: int, expires: datetime) -> bool:
            if instance_id == "let-go":
                keeper.release(tokens["let-go"])  # the step ends while this renewal runs
            return False

    keeper = LeaseKeeper(Gone())  # type: ignore[arg-type]
    tokens: dict[str, int] = {}
    try:
        with caplog.at_level(logging.WARNING, logger="eddic"):
            tokens["let-go"] = keeper.hold("let-go", "w", 1, 0.3)
            tokens["taken"] = keeper.hold("taken", "w", 1, 0.3)
            time.sleep(0.6)  # due after 0.1 s
    finally:
        keeper.stop()
    warned = [r.getMessage() for r in caplog.records if "taken over" in r.getMessage()]
    assert len(warned) == 1 and "lease on taken was taken over" in warned[0], warned
