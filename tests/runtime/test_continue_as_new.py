"""Design §8, continue-as-new, on both backends: ``yield ContinueAsNew(input)`` ends the run and
starts the next with the same id, history restarting at seq 1, the input validated like a
start's, unconsumed mailbox events carried over, the saga stack dropped, never a final status
in between; ``get_instance()["run"]`` counts runs and ``history(id, run=N)`` reads an earlier
one."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from eddic import (
    ActivityContext,
    All,
    App,
    ContinueAsNew,
    Publish,
    Sleep,
    WaitEvent,
    WorkflowContext,
    WorkflowFailed,
    activity,
    compensation,
    on_failure,
    workflow,
)

pytestmark = pytest.mark.both_backends


class Tally(BaseModel):
    count: int
    until: int


undone: list[str] = []


@activity(name="cn_bump")
def cn_bump(n: int) -> int:
    return n + 1


@workflow(name="cn_counter")
def cn_counter(ctx: WorkflowContext, tally: Tally) -> dict:
    count = tally.count
    for _ in range(3):  # three iterations per run
        if count >= tally.until:
            return {"count": count, "id": str(ctx.uuid())}
        count = yield cn_bump(count)
        yield Sleep(0)
    yield ContinueAsNew(Tally(count=count, until=tally.until))


def test_a_loop_continues_as_new_and_each_run_keeps_a_short_history(app: App) -> None:
    iid = app.start(cn_counter, Tally(count=0, until=10), instance_id="loop-1")
    info = app.get_instance(iid)
    assert info["status"] == "completed"
    assert app.result(iid)["count"] == 10
    assert info["run"] == 4  # 3 + 3 + 3 + 1 iterations
    assert app.get_instance(iid)["input_data"] == {"count": 9, "until": 10}
    current = app.history(iid)
    assert current[0]["seq"] == 1 and len(current) == 4  # one activity, one timer
    first = app.history(iid, run=1)
    assert len(first) == 13  # 3 x (activity + timer) = 12 records, then the ContinueAsNew
    assert (first[-1]["kind"], first[-1]["args"]) == (
        "continue",
        {"input": {"count": 3, "until": 10}},
    )
    assert [h["seq"] for h in app.history(iid, run=2)][:2] == [1, 1]  # seqs restart per run
    assert app.history(iid, run=9) == []


@workflow(name="cn_mailbox")
def cn_mailbox(ctx: WorkflowContext, seen: list[str]) -> list[str]:
    if len(seen) == 2:
        return seen
    event = yield WaitEvent("cn.item")
    yield ContinueAsNew([*seen, str(event.data)])


def test_unconsumed_mailbox_events_are_carried_over_to_the_next_run(app: App) -> None:
    iid = app.start(cn_mailbox, [], instance_id="mail-1")
    # Two targeted events before the first is consumed: the second waits in the mailbox.
    app.send_event("cn.item", "a", instance_id=iid, inline=False)
    app.send_event("cn.item", "b", instance_id=iid, inline=False)
    app.run_due()
    assert app.result(iid) == ["a", "b"]
    assert app.get_instance(iid)["run"] == 3


@compensation(name="cn_undo")
def cn_undo(ctx: ActivityContext, what: str) -> None:
    undone.append(what)


@on_failure(cn_undo)
@activity(name="cn_do")
def cn_do(what: str) -> str:
    return what


@workflow(name="cn_saga")
def cn_saga(ctx: WorkflowContext, run: int) -> str:
    yield cn_do(f"run {run}")
    if run == 1:
        yield ContinueAsNew(2)
    raise RuntimeError("run 2 fails")


def test_the_saga_stack_is_dropped_at_a_continue(app: App) -> None:
    undone.clear()
    iid = app.start(cn_saga, 1)
    with pytest.raises(WorkflowFailed):
        app.result(iid)
    assert undone == ["run 2"]  # run 1's completed activity is not compensated by run 2


@workflow(name="cn_bad_input")
def cn_bad_input(ctx: WorkflowContext, tally: Tally) -> str:
    try:
        yield ContinueAsNew({"count": "many"})
    except ValueError as exc:  # pydantic's ValidationError, named, thrown in at the yield
        return f"refused: {'count' in str(exc) and 'ContinueAsNew' in str(exc)}"
    return "continued"


@workflow(name="cn_nested")
def cn_nested(ctx: WorkflowContext) -> str:
    try:
        yield All(Sleep(0), ContinueAsNew(None))
    except TypeError as exc:
        return str(exc)
    return "continued"


def test_a_bad_input_or_a_nested_continue_is_thrown_in_at_the_yield(app: App) -> None:
    assert app.result(app.start(cn_bad_input, Tally(count=0, until=1))) == ("refused: True")
    assert "yield it alone" in app.result(app.start(cn_nested))


@workflow(name="cn_publisher")
def cn_publisher(ctx: WorkflowContext, run: int) -> list[str]:
    first = yield Publish("cn.tick", {"run": run})
    if run < 3:
        yield ContinueAsNew(run + 1)
    return [str(first), str(ctx.uuid())]


def test_each_run_derives_its_own_ids(app: App) -> None:
    iid = app.start(cn_publisher, 1)
    assert app.get_instance(iid)["run"] == 3
    ids = [row["event_id"] for row in app.storage.outbox.rows(limit=10)]
    assert len(ids) == 3 and len(set(ids)) == 3  # one event per run, never the same id


def test_the_kernel_driver_begins_the_next_run_at_once() -> None:
    from eddic.testing import WorkflowDriver

    driver = WorkflowDriver(cn_counter, {"count": 0, "until": 4})
    for _ in range(3):
        driver.complete("cn_bump", driver.pending[0].command.args[0] + 1)
        driver.advance(0)
    assert driver.run == 2 and len(driver.runs) == 1
    assert driver.runs[0][-1].kind == "continue"  # type: ignore[union-attr]
    driver.complete("cn_bump", 4)
    driver.advance(0)  # its Sleep(0), then the loop sees the count
    assert driver.status == "completed" and driver.result["count"] == 4


def test_the_kernel_driver_completes_and_fails_children() -> None:
    from eddic import CallWorkflow, ChildWorkflowFailed
    from eddic.testing import WorkflowDriver

    @workflow(name="cn_family")
    def family(ctx: WorkflowContext) -> list[str]:
        first = yield CallWorkflow("cn_kid", "a")
        try:
            yield CallWorkflow("cn_kid", "b")
        except ChildWorkflowFailed as exc:
            return [first, f"{exc.instance_id}: {exc.message}"]
        return [first]

    driver = WorkflowDriver(family, instance_id="fam")
    assert driver.waiting_on == ["child cn_kid"]
    driver.complete_child("cn_kid", "A")
    driver.fail_child("cn_kid", ValueError("no b"))
    assert driver.result == ["A", "fam/2: no b"]


def test_eddic_show_tells_the_run(app: App, capsys: pytest.CaptureFixture[str]) -> None:
    from eddic.cli import main

    iid = app.start(cn_counter, Tally(count=0, until=7), instance_id="shown-loop")
    capsys.readouterr()
    assert main(["show", iid, "--db", app.storage.db_url]) == 0
    fields = {line[:10].strip(): line[10:] for line in capsys.readouterr().out.splitlines()}
    assert fields["run"] == "3 (continued as new 2 times)"


def test_eddic_replay_says_which_run_it_replays(
    app: App, capsys: pytest.CaptureFixture[str]
) -> None:
    from eddic.cli import main

    iid = app.start(cn_counter, Tally(count=0, until=7), instance_id="replayed-loop")
    capsys.readouterr()
    assert main(["replay", iid, "--db", app.storage.db_url]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "run 3: continued as new 2 times" in first
