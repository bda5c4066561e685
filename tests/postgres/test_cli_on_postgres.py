"""Every ``eddic`` command on a ``postgresql://`` database (in-process: the workflows below are
registered, so ``check``, ``replay`` and ``retry`` need no ``--import``)."""

from __future__ import annotations

import json

import pytest

from eddic import App, Publish, WaitEvent, WorkflowContext, activity, workflow
from eddic.cli import main

broken = {"yes": False}


@activity
def pgc_greet(name: str) -> str:
    return f"hello {name}"


@workflow
def pgc_flow(ctx: WorkflowContext, name: str) -> str:
    greeting = yield pgc_greet(name)
    event = yield WaitEvent("pgc.go")
    yield Publish("pgc.done", data={"greeting": greeting})
    if broken["yes"]:
        raise SystemExit(2)
    return f"{greeting}, {event.data}"


def test_every_command_works_on_a_postgres_url(
    postgres_schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres_schema_url
    with App(db_url=url) as app:
        app.start(pgc_flow, input="ada", instance_id="pgc-1")
    capsys.readouterr()

    assert main(["list", "--db", url]) == 0
    assert "pgc-1" in capsys.readouterr().out
    assert main(["list", "--db", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "waiting_for_event"
    assert main(["show", "pgc-1", "--db", url]) == 0
    assert "pgc_greet" in capsys.readouterr().out
    assert main(["replay", "pgc-1", "--db", url]) == 0
    assert main(["check", "--db", url]) == 0
    assert "1 replay" in capsys.readouterr().out
    broken["yes"] = True
    try:
        assert (
            main(["send-event", "pgc.go", "--data", '"bob"', "--instance", "pgc-1", "--db", url])
            == 0
        )
        assert main(["show", "pgc-1", "--db", url]) == 0
        assert "parked" in capsys.readouterr().out
    finally:
        broken["yes"] = False
    assert main(["retry", "pgc-1", "--db", url]) == 0
    assert "now completed" in capsys.readouterr().out
    assert main(["outbox", "--db", url, "--all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["event_type"], r["status"]) for r in rows] == [("pgc.done", "pending")]
    assert main(["show", "no-such-id", "--db", url]) == 2
    assert "no workflow instance" in capsys.readouterr().err


def test_a_bad_password_is_an_error_without_the_password(
    postgres_schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scheme, rest = postgres_schema_url.split("://", 1)
    user, after = rest.split(":", 1)
    bad = f"{scheme}://{user}:not-the-secret-x9@{after.split('@', 1)[1]}"
    assert main(["list", "--db", bad]) == 2
    err = capsys.readouterr().err
    assert "not-the-secret-x9" not in err and err.startswith("eddic: error:")
