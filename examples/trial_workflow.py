"""A free trial, as a durable workflow: a timer and an event with a deadline.

Welcome the user, wait 14 days, remind them, then wait up to 3 days for a payment: activate the
subscription if it comes, expire the trial if it does not.

``examples/test_timer_and_event_workflow.py`` tests it under frozen time, and
``examples/debugging_a_replay.md`` debugs it. Run this file to record a small database to try
the ``eddic`` command on::

    python examples/trial_workflow.py trials.db
    PYTHONPATH=examples eddic list --db trials.db
    PYTHONPATH=examples eddic check --db trials.db --import trial_workflow
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone

from freezegun import freeze_time
from pydantic import BaseModel

from eddic import App, EventTimeout, Sleep, WaitEvent, WorkflowContext, activity, workflow

TRIAL = timedelta(days=14)
GRACE = timedelta(days=3)


class Trial(BaseModel):
    user: str
    plan: str = "pro"


@activity
def send_email(to: str, template: str) -> str:
    """Pretend to send an email; returns the message id."""
    return f"msg-{template}-{to}"


@activity
def activate_subscription(user: str, plan: str, payment_id: str) -> str:
    return f"sub-{plan}-{user}"


@activity
def expire_trial(user: str) -> None:
    return None


@workflow
def free_trial(ctx: WorkflowContext, trial: Trial) -> str:
    yield send_email(trial.user, "welcome")
    yield Sleep(TRIAL)
    yield send_email(trial.user, "trial-ending")
    try:
        payment = yield WaitEvent("payment.succeeded", timeout=GRACE)
    except EventTimeout:
        yield expire_trial(trial.user)
        return "expired"
    subscription = yield activate_subscription(trial.user, trial.plan, payment.data["payment_id"])
    return str(subscription)


def record_demo(path: str) -> None:
    """Three trials, recorded over 15 days that pass in no time: one paid, two still running."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with freeze_time(now - timedelta(days=15)) as clock, App(db_url=f"sqlite:///{path}") as app:
        for user in ("ada", "cy"):
            app.start(free_trial, input={"user": user}, instance_id=f"trial-{user}")
        clock.tick(TRIAL)
        app.run_due()  # both are reminded, and wait for a payment
        clock.tick(timedelta(hours=5))
        app.send_event("payment.succeeded", data={"payment_id": "pay-1"}, instance_id="trial-ada")
        clock.tick(timedelta(hours=19))
        app.start(free_trial, input={"user": "bob"}, instance_id="trial-bob")
        for row in app.list_instances():
            print(f"{row['instance_id']:<10} {row['status']}")


if __name__ == "__main__":
    record_demo(sys.argv[1] if len(sys.argv) > 1 else "trials.db")
