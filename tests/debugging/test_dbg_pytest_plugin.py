"""The pytest plugin: installed through the ``pytest11`` entry point, its fixtures work."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
from datetime import datetime, timedelta, timezone

import pytest
from eddic import Sleep, WaitEvent, activity, workflow


@activity
def pt_greet(name: str) -> str:
    return f"hello {name}"


@workflow
def pt_reminder(ctx, name: str) -> str:
    yield Sleep(timedelta(days=7))
    try:
        yield WaitEvent("pt.ack", timeout=60)
        acked = "acked"
    except Exception:
        acked = "ignored"
    greeting = yield pt_greet(name)
    return f"{greeting} at {ctx.now().isoformat()}, {acked}"


@pytest.fixture
def eddic_start_time():
    return datetime(2030, 6, 1, tzinfo=timezone.utc)


def test_a_week_passes_in_one_call(eddic_env, eddic_clock):
    iid = eddic_env.start(pt_reminder, input="ada")
    eddic_env.run_until_idle()
    when = datetime(2030, 6, 8, 0, 1, tzinfo=timezone.utc)
    assert eddic_env.result(iid) == f"hello ada at {when.isoformat()}, ignored"
    assert eddic_clock.now() == when


def test_a_stubbed_activity_and_the_app_fixture(eddic_env, eddic_app):
    eddic_env.override_activity(pt_greet, lambda name: f"hi {name}")
    iid = eddic_app.start(pt_reminder, input="bob")
    eddic_env.advance(timedelta(days=7))
    eddic_app.send_event("pt.ack", instance_id=iid)
    assert eddic_app.result(iid).startswith("hi bob at 2030-06-08T00:00:00")
    eddic_env.assert_history(
        iid,
        [
            "timer sleep: fired",
            "event pt.ack: received",
            "activity pt_greet: completed",
        ],
    )


def test_each_test_gets_a_fresh_database(eddic_app):
    assert eddic_app.list_instances() == []
"""


def test_the_plugin_fixtures_run_a_users_workflow_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_workflows=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")  # in-process: the plugin autoloads
    result.assert_outcomes(passed=3)


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    # A fresh interpreter: the fixtures come from the installed entry point, nothing else.
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        [
            "*fixtures defined from eddic.testing.pytest_plugin*",
            "eddic_env*",
            "*in-memory eddic app under frozen time*",
        ]
    )
    assert result.ret == 0
