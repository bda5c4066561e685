"""``eddic.testing``: frozen time that fires timers in order, activity stubs, history assertions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from eddic import (
    ActivityContext,
    ActivityFailed,
    EddicError,
    EventTimeout,
    First,
    Publish,
    RetryPolicy,
    Sleep,
    WaitEvent,
    WorkflowContext,
    activity,
    workflow,
)
from eddic.testing import (
    DEFAULT_START,
    FrozenClock,
    WorkflowEnvironment,
    assert_history,
    mock_activity,
    override_activity,
)

T0 = DEFAULT_START


@workflow
def te_naps(ctx: WorkflowContext, naps: list[float]) -> list[str]:
    woke = []
    for seconds in naps:
        yield Sleep(seconds)
        woke.append(ctx.now().isoformat())
    return woke


def test_advance_fires_a_timer_at_its_deadline_and_not_a_second_before(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(te_naps, input=[30])
    eddic_env.advance(29)
    assert eddic_env.status(iid) == "waiting_for_timer"
    eddic_env.advance(1)
    assert eddic_env.result(iid) == [(T0 + timedelta(seconds=30)).isoformat()]


def test_advance_fires_each_timer_at_its_own_deadline_in_time_order(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(te_naps, input=[10, 20, 30])
    eddic_env.advance(timedelta(minutes=5))
    assert eddic_env.result(iid) == [(T0 + timedelta(seconds=s)).isoformat() for s in (10, 30, 60)]
    assert eddic_env.now() == T0 + timedelta(minutes=5)


def test_run_until_idle_passes_a_thirty_day_sleep_in_one_call(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(te_naps, input=[timedelta(days=30).total_seconds()])
    eddic_env.run_until_idle()
    assert eddic_env.status(iid) == "completed"
    assert eddic_env.now() == T0 + timedelta(days=30)  # the clock stopped at the deadline


@workflow
def te_payment(ctx: WorkflowContext, order_id: str) -> str:
    try:
        event = yield WaitEvent("te.paid", timeout=3600)
    except EventTimeout:
        return f"{order_id}: timed out at {ctx.now().isoformat()}"
    return f"{order_id}: paid {event.data['amount']}"


def test_run_until_idle_reaches_an_event_timeout(eddic_env: WorkflowEnvironment) -> None:
    iid = eddic_env.start(te_payment, input="A1")
    eddic_env.run_until_idle()
    deadline = T0 + timedelta(hours=1)
    assert eddic_env.result(iid) == f"A1: timed out at {deadline.isoformat()}"


def test_an_event_before_its_timeout_is_received(eddic_env: WorkflowEnvironment) -> None:
    iid = eddic_env.start(te_payment, input="A2")
    eddic_env.advance(timedelta(minutes=59))
    eddic_env.send_event("te.paid", data={"amount": 5}, instance_id=iid)
    eddic_env.run_until_idle()
    assert eddic_env.result(iid) == "A2: paid 5"


def test_run_until_idle_stops_at_a_wait_with_no_deadline(eddic_env: WorkflowEnvironment) -> None:
    @workflow(name="te_forever_waiting")
    def waits(ctx: WorkflowContext, _: None = None) -> None:
        yield WaitEvent("te.never")

    iid = eddic_env.start(waits)
    assert eddic_env.run_until_idle() == 0
    assert eddic_env.status(iid) == "waiting_for_event" and eddic_env.now() == T0


def test_run_until_idle_gives_up_on_a_workflow_that_sleeps_forever() -> None:
    @workflow(name="te_insomniac")
    def insomniac(ctx: WorkflowContext, _: None = None) -> None:
        while True:
            yield Sleep(60)

    with WorkflowEnvironment(max_steps=20) as env:
        env.start(insomniac)
        with pytest.raises(EddicError, match="still busy after 20 passes"):
            env.run_until_idle()


attempts: list[int] = []


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=60, backoff=10, max_interval=3600))
def te_flaky(ctx: ActivityContext) -> int:
    attempts.append(ctx.attempt)
    if ctx.attempt < 3:
        raise ConnectionError("try later")
    return ctx.attempt


@workflow
def te_retrying(ctx: WorkflowContext, _: None = None) -> int:
    return (yield te_flaky())


def test_retry_backoff_passes_in_no_real_time(eddic_env: WorkflowEnvironment) -> None:
    attempts.clear()
    iid = eddic_env.start(te_retrying)
    assert eddic_env.status(iid) == "waiting_for_timer"
    eddic_env.run_until_idle()
    assert eddic_env.result(iid) == 3 and attempts == [1, 2, 3]
    assert eddic_env.now() == T0 + timedelta(seconds=60 + 600)


def test_the_frozen_clock_never_moves_backwards() -> None:
    with FrozenClock("2026-05-01T00:00:00") as clock:
        assert clock.now().isoformat() == "2026-05-01T00:00:00+00:00"
        with pytest.raises(ValueError, match="forward"):
            clock.move_to(datetime.fromisoformat("2026-04-30T00:00:00+00:00"))
        with pytest.raises(ValueError, match="forward"):
            clock.advance(-1)


# -- replacing activities -----------------------------------------------------------------------

charged: list[str] = []


@activity
def te_charge(ctx: ActivityContext, card: str, amount: int) -> str:
    charged.append(card)  # the real one: must not run while replaced
    return f"real-{amount}"


@workflow
def te_checkout(ctx: WorkflowContext, amount: int) -> str:
    try:
        receipt = yield te_charge("4242", amount)
    except ActivityFailed as exc:
        return f"declined: {exc.message}"
    yield Publish("te.charged", data={"receipt": receipt})
    return str(receipt)


def test_an_override_replaces_the_activity_for_the_test_and_is_undone_after() -> None:
    charged.clear()
    original = te_charge.func
    with WorkflowEnvironment() as env:
        env.override_activity(te_charge, lambda card, amount: f"stub-{card}-{amount}")
        assert env.result(env.start(te_checkout, input=7)) == "stub-4242-7"
    assert te_charge.func is original and charged == []


def test_an_override_taking_ctx_receives_the_activity_context(
    eddic_env: WorkflowEnvironment,
) -> None:
    def stub(ctx: ActivityContext, card: str, amount: int) -> str:
        return ctx.idempotency_key

    with override_activity("te_charge", stub):
        iid = eddic_env.start(te_checkout, input=1)
    assert eddic_env.result(iid) == f"{iid}:1"


def test_an_async_override_runs_to_completion(eddic_env: WorkflowEnvironment) -> None:
    async def stub(card: str, amount: int) -> str:
        return f"async-{amount}"

    eddic_env.override_activity(te_charge, stub)
    assert eddic_env.result(eddic_env.start(te_checkout, input=3)) == "async-3"


def test_a_mock_records_the_calls_with_their_arguments(eddic_env: WorkflowEnvironment) -> None:
    charge = eddic_env.mock_activity(te_charge, return_value="mocked")
    iid = eddic_env.start(te_checkout, input=12)
    assert eddic_env.result(iid) == "mocked"
    charge.assert_called_once_with(card="4242", amount=12)


def test_a_mock_raising_fails_the_activity_in_the_workflow() -> None:
    with (
        WorkflowEnvironment() as env,
        mock_activity(te_charge, side_effect=RuntimeError("insufficient funds")),
    ):
        iid = env.start(te_checkout, input=99)
        assert env.result(iid) == "declined: insufficient funds"


# -- the history in readable terms --------------------------------------------------------------


@workflow
def te_race(ctx: WorkflowContext, _: None = None) -> int:
    index, _value = yield First(WaitEvent("te.go"), Sleep(600))
    receipt = yield te_charge("1111", 5)
    yield Publish("te.done", data={"receipt": receipt})
    return int(index)


def test_the_history_reads_as_one_line_per_command(eddic_env: WorkflowEnvironment) -> None:
    eddic_env.override_activity(te_charge, lambda card, amount: "r-1")
    iid = eddic_env.start(te_race)
    eddic_env.send_event("te.go", instance_id=iid)
    eddic_env.assert_history(
        iid,
        [
            "event te.go: received",
            "timer sleep: cancelled",
            "activity te_charge: completed",
            "publish te.done: published",
        ],
    )
    history = eddic_env.history(iid)
    assert history.calls(te_charge) == [{"card": "1111", "amount": 5}]
    assert history[2].value == "r-1" and history[0].duration == timedelta(0)
    assert [e.data for e in eddic_env.published("te.done")] == [{"receipt": "r-1"}]


def test_an_unfinished_wait_reads_as_waiting(eddic_env: WorkflowEnvironment) -> None:
    iid = eddic_env.start(te_race)
    eddic_env.assert_history(iid, ["event te.go: waiting", "timer sleep: waiting"])


def test_a_history_mismatch_fails_with_a_diff(eddic_env: WorkflowEnvironment) -> None:
    eddic_env.override_activity(te_charge, lambda card, amount: "r-2")
    iid = eddic_env.start(te_race)
    eddic_env.advance(600)
    with pytest.raises(AssertionError) as caught:
        eddic_env.assert_history(iid, ["event te.go: received", "activity te_charge: completed"])
    message = str(caught.value)
    assert f"history of instance {iid!r} is not what was expected" in message
    assert "- event te.go: received" in message
    assert "+ event te.go: cancelled" in message
    assert "+ timer sleep: fired" in message


def test_a_history_can_be_checked_for_a_subsequence(eddic_env: WorkflowEnvironment) -> None:
    eddic_env.override_activity(te_charge, lambda card, amount: "r-3")
    iid = eddic_env.start(te_race)
    eddic_env.advance(600)
    history = eddic_env.history(iid)
    assert_history(history, ["timer sleep: fired", "publish te.done: published"], exact=False)
    with pytest.raises(AssertionError, match="does not contain, in order"):
        assert_history(history, ["publish te.done: published", "timer sleep: fired"], exact=False)


def test_activities_that_are_not_registered_cannot_be_overridden() -> None:
    with pytest.raises(EddicError, match="no activity named 'te_nothing'"):  # noqa: SIM117
        with override_activity("te_nothing", lambda: None):
            pass
