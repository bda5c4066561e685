"""Testing a workflow with a 14-day timer and a 3-day event deadline, in milliseconds.

The ``eddic_env`` fixture comes from eddic's pytest plugin (installed with eddic, nothing to
configure): an app on an in-memory database under frozen time. Time moves only when the test
says so, and each timer fires at its own deadline.

Run it with ``python -m pytest examples/test_timer_and_event_workflow.py``.
"""

from __future__ import annotations

from datetime import timedelta

from trial_workflow import GRACE, TRIAL, activate_subscription, free_trial, send_email

from eddic.testing import DEFAULT_START, WorkflowDriver, WorkflowEnvironment


def test_a_user_who_pays_after_the_reminder_gets_a_subscription(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(free_trial, input={"user": "ada"})
    assert eddic_env.status(iid) == "waiting_for_timer"

    eddic_env.advance(TRIAL)  # the 14 days pass; the reminder goes out
    assert eddic_env.status(iid) == "waiting_for_event"

    eddic_env.advance(timedelta(days=2))
    eddic_env.send_event("payment.succeeded", data={"payment_id": "pay-7"}, instance_id=iid)

    assert eddic_env.result(iid) == "sub-pro-ada"
    eddic_env.assert_history(
        iid,
        [
            "activity send_email: completed",
            "timer sleep: fired",
            "activity send_email: completed",
            "event payment.succeeded: received",
            "activity activate_subscription: completed",
        ],
    )


def test_a_user_who_never_pays_is_expired_exactly_when_the_grace_period_ends(
    eddic_env: WorkflowEnvironment,
) -> None:
    iid = eddic_env.start(free_trial, input={"user": "bob"})

    eddic_env.run_until_idle()  # jumps from timer to timer: 17 days in one call

    assert eddic_env.result(iid) == "expired"
    assert eddic_env.now() == DEFAULT_START + TRIAL + GRACE
    expired = eddic_env.history(iid)[-1]
    assert expired.line == "activity expire_trial: completed"
    assert expired.scheduled_at == DEFAULT_START + TRIAL + GRACE


def test_a_payment_one_second_late_is_too_late(eddic_env: WorkflowEnvironment) -> None:
    iid = eddic_env.start(free_trial, input={"user": "cy"})
    eddic_env.advance(TRIAL + GRACE + timedelta(seconds=1))
    assert eddic_env.status(iid) == "completed"
    assert eddic_env.result(iid) == "expired"


def test_activities_are_stubbed_without_touching_the_workflow(
    eddic_env: WorkflowEnvironment,
) -> None:
    emails = eddic_env.mock_activity(send_email, return_value="msg-test")
    eddic_env.override_activity(
        activate_subscription, lambda user, plan, payment_id: f"stub-{payment_id}"
    )
    iid = eddic_env.start(free_trial, input={"user": "dee", "plan": "team"})
    eddic_env.advance(TRIAL)
    eddic_env.send_event("payment.succeeded", data={"payment_id": "pay-9"}, instance_id=iid)

    assert eddic_env.result(iid) == "stub-pay-9"
    assert [c.kwargs for c in emails.call_args_list] == [
        {"to": "dee", "template": "welcome"},
        {"to": "dee", "template": "trial-ending"},
    ]


def test_the_recorded_run_replays_step_by_step(eddic_env: WorkflowEnvironment) -> None:
    iid = eddic_env.start(free_trial, input={"user": "eve"})
    eddic_env.run_until_idle()

    steps = list(eddic_env.replay(iid))  # runs the workflow code again; no activity runs

    assert [(s.seq, s.kind, s.name, s.state) for s in steps] == [
        (1, "activity", "send_email", "completed"),
        (2, "timer", "sleep", "completed"),
        (3, "activity", "send_email", "completed"),
        (4, "event", "payment.succeeded", "failed"),
        (5, "activity", "expire_trial", "completed"),
    ]
    assert type(steps[3].error).__name__ == "EventTimeout"


def test_the_same_workflow_on_the_kernel_alone_with_no_database() -> None:
    run = WorkflowDriver(free_trial, input={"user": "fay"})  # outcomes are fed by the test
    assert run.waiting_on == ["activity send_email"]
    run.complete(send_email, "msg-1")
    run.advance(TRIAL)
    run.complete(send_email, "msg-2")
    assert run.waiting_on == ["event payment.succeeded"]
    run.advance(GRACE)
    run.complete("expire_trial")
    assert run.result == "expired"
