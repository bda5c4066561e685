"""``eddic.compat.edda`` (design §9, "the seed tutorial, verbatim").

First the tutorial itself: ``examples/edda_tutorial.py`` (its Steps 1-4 with only the imports
changed) runs in a fresh directory and prints, line by line, the expected output of its Step 5,
then with ``--fail-shipping`` (Step 6's failing ``ship_order``) that of Step 6. Then the pieces
of the layer: ``EddaApp`` and ``app.storage.get_instance``, ``workflow.start`` (ids,
idempotency, parameters, what it raises), compensation newest first, the outbox behind
``send_event_transactional``, the background worker, and the errors bad arguments get.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pydantic
import pytest

import eddic
from eddic import ActivityContext, App, Event, Sleep, WorkflowFailed
from eddic.compat.edda import (
    EddaApp,
    WorkflowContext,
    activity,
    compensation,
    on_failure,
    send_event_transactional,
    workflow,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "edda_tutorial.py"

# The tutorial's "Expected output" of Step 5, as the seed text of the tutorial gives it: one line
# each, without the indentation and the blank lines of the tutorial's page (the comparison below
# strips both). `<instance_id>` stands for the id.
STEP_5 = """\
Starting order processing workflow...
📦 Reserving inventory for ORD-12345: $109.97
💳 Processing payment for ORD-12345: $109.97
🚚 Shipping ORD-12345 to Shibuya, Japan
✅ Workflow started: <instance_id>
📊 Order completed:
- Order ID: ORD-12345
- Total: $109.97
- Tracking: TRACK-ORD-12345
"""

# Step 6's, likewise. `...` stands for the traceback's frames. Step 6 shows the run from its
# first activity on: the line the script prints before (Step 5's first) is left out there.
STEP_6 = """\
📦 Reserving inventory for ORD-12345: $109.97
💳 Processing payment for ORD-12345: $109.97
🚚 Shipping ORD-12345 to Shibuya, Japan
💥 Exception: Shipping service unavailable!
❌ Refunding payment for ORD-12345: $109.97
❌ Cancelling inventory reservation for ORD-12345
Traceback (most recent call last):
...
Exception: Shipping service unavailable!
"""

INSTANCE_ID = re.compile(r"^order_processing_workflow-[0-9a-f]{32}$")


def run_tutorial(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def assert_matches(printed: list[str], expected: list[str]) -> None:
    """``printed`` is ``expected`` line by line; ``<instance_id>`` matches an Edda-style id and a
    line ``...`` any lines (at least one)."""
    i = 0
    for k, want in enumerate(expected):
        if want == "...":
            end = len(printed) - (len(expected) - k - 1)
            assert end > i, f"nothing where the tutorial shows `...`: {printed}"
            i = end
            continue
        assert i < len(printed), f"missing {want!r}; printed:\n" + "\n".join(printed)
        got = printed[i]
        if "<instance_id>" in want:
            head = want.split("<instance_id>")[0]
            assert got.startswith(head) and INSTANCE_ID.match(got[len(head) :]), (got, want)
        else:
            assert got == want, f"line {i + 1}: {got!r}, the tutorial shows {want!r}"
        i += 1
    assert i == len(printed), f"printed more than the tutorial shows: {printed[i:]}"


def test_the_tutorial_prints_its_step_5_then_its_step_6_output(tmp_path: Path) -> None:
    happy = run_tutorial(tmp_path)
    assert happy.returncode == 0, happy.stderr
    assert happy.stderr == ""
    assert_matches(lines_of(happy.stdout), lines_of(STEP_5))
    assert "\n   - Order ID: ORD-12345\n" in happy.stdout  # the page's indentation, too

    # "Run again" with Step 6's ship_order, in the same directory (the same orders.db)
    failing = run_tutorial(tmp_path, "--fail-shipping")
    assert failing.returncode == 1  # the traceback ends the script, as the tutorial shows
    # everything on stdout comes before the traceback on stderr: together, the terminal's text
    assert failing.stderr.startswith("Traceback (most recent call last):\n"), failing.stderr
    printed = lines_of(failing.stdout) + lines_of(failing.stderr)
    assert_matches(printed, ["Starting order processing workflow...", *lines_of(STEP_6)])

    # what the two runs left in orders.db: the saga, compensated newest first, durably
    with App(db_url="sqlite:///" + str(tmp_path / "orders.db")) as app:
        done, failed = sorted(app.list_instances(), key=lambda i: i["status"])
        assert (done["status"], failed["status"]) == ("completed", "failed")
        assert INSTANCE_ID.match(done["instance_id"]) and INSTANCE_ID.match(failed["instance_id"])
        assert done["output_data"]["confirmation_number"] == "TRACK-ORD-12345"
        steps = [
            (h["kind"], h["name"])
            for h in app.history(failed["instance_id"])
            if h["record"] == "scheduled"
        ]
        assert steps == [
            ("activity", "reserve_inventory"),
            ("activity", "process_payment"),
            ("activity", "ship_order"),
            ("compensation", "refund_payment"),
            ("compensation", "cancel_inventory_reservation"),
        ]


def test_the_tutorial_runs_from_a_fresh_directory_as_the_docs_tests_run_it(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    done = run_tutorial(fresh)
    assert done.returncode == 0, done.stderr
    assert (fresh / "orders.db").exists()  # the tutorial's own sqlite:///orders.db, relative


# -- the pieces -----------------------------------------------------------------------------------


def run(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(make())


class Parcel(pydantic.BaseModel):
    parcel_id: str = pydantic.Field(pattern=r"^P-\d+$")
    weight: float


class Receipt(pydantic.BaseModel):
    parcel_id: str
    label: str


calls: list[str] = []
printed: list[str] = []


@compensation
async def edda_t_unlabel(ctx: WorkflowContext, parcel_id: str) -> dict:
    printed.append(f"unlabel {parcel_id}")
    await send_event_transactional(
        ctx, event_type="label.voided", event_source="post", event_data={"parcel": parcel_id}
    )
    return {"voided": True}


@activity
@on_failure(edda_t_unlabel)
async def edda_t_label(ctx: WorkflowContext, parcel_id: str, weight: float) -> dict:
    calls.append(parcel_id)
    assert isinstance(ctx, ActivityContext)
    await send_event_transactional(
        ctx,
        event_type="label.printed",
        event_source="post",
        event_data=Receipt(parcel_id=parcel_id, label=f"L-{parcel_id}"),
    )
    return {"label": f"L-{parcel_id}"}


@compensation
def edda_t_unweigh(ctx: WorkflowContext, weight: float) -> None:  # a plain def one, too
    printed.append(f"unweigh {weight}")


@on_failure(edda_t_unweigh)  # above @activity, as well as below
@activity
def edda_t_weigh(context: WorkflowContext, weight: float) -> float:  # first parameter: any name
    assert isinstance(context, ActivityContext)
    return weight


class ParcelLost(Exception):
    pass


@activity
async def edda_t_dispatch(ctx: WorkflowContext, parcel_id: str) -> str:
    if parcel_id == "P-13":
        raise ParcelLost(f"{parcel_id} fell off the truck")
    return "dispatched"


@workflow
async def edda_t_ship(ctx: WorkflowContext, input: Parcel) -> Receipt:
    await edda_t_weigh(ctx, input.weight)
    labelled = await edda_t_label(ctx, input.parcel_id, input.weight)
    await edda_t_dispatch(ctx, input.parcel_id)
    event_id = await send_event_transactional(
        ctx, event_type="parcel.sent", event_source="post", event_data={"parcel": input.parcel_id}
    )
    assert isinstance(event_id, str)
    return Receipt(parcel_id=input.parcel_id, label=labelled["label"])


@workflow
async def edda_t_pair(ctx: WorkflowContext, left: str, right: str = "R") -> dict:
    return {"left": left, "right": right}


@workflow(lock_timeout_seconds=60)
async def edda_t_nothing(ctx: WorkflowContext) -> str:
    return "nothing"


@workflow
async def edda_t_nap(ctx: WorkflowContext, seconds: float) -> str:
    await Sleep(seconds)  # eddic's commands can be awaited in an Edda workflow
    return "rested"


@workflow
async def edda_t_own_error(ctx: WorkflowContext, input: Parcel) -> None:
    await edda_t_weigh(ctx, input.weight)
    raise KeyError(input.parcel_id)


def app_on(tmp_path: Path, **options: Any) -> EddaApp:
    return EddaApp(service_name="post", db_url=f"sqlite:///{tmp_path / 'post.db'}", **options)


def test_start_runs_the_instance_and_storage_get_instance_reads_it(tmp_path: Path) -> None:
    async def main() -> None:
        app = app_on(tmp_path)
        await app.initialize()
        await app.initialize()  # idempotent
        try:
            first = await edda_t_ship.start(input=Parcel(parcel_id="P-1", weight=2.5))
            second = await edda_t_ship.start(input={"parcel_id": "P-2", "weight": 1.0})
            assert first != second
            assert re.fullmatch(r"edda_t_ship-[0-9a-f]{32}", first)
            info = await app.storage.get_instance(first)
            assert info is not None
            assert info["status"] == "completed"
            assert info["workflow_name"] == "edda_t_ship"
            assert info["output_data"] == {"parcel_id": "P-1", "label": "L-P-1"}
            assert info["input_data"] == {"parcel_id": "P-1", "weight": 2.5}
            assert await app.storage.get_instance("no-such-instance") is None
            assert await app.eddic.result(first) == Receipt(parcel_id="P-1", label="L-P-1")
        finally:
            await app.shutdown()

    run(main)


def test_a_start_repeated_with_its_instance_id_runs_nothing_again(tmp_path: Path) -> None:
    async def main() -> None:
        app = app_on(tmp_path)
        await app.initialize()
        try:
            parcel = Parcel(parcel_id="P-7", weight=1.0)
            before = calls.count("P-7")
            ids = [await edda_t_ship.start(input=parcel, instance_id="parcel-7") for _ in range(3)]
            assert ids == ["parcel-7"] * 3
            assert calls.count("P-7") == before + 1
            with pytest.raises(eddic.InstanceExists):  # the id is another workflow's
                await edda_t_pair.start(left="L", instance_id="parcel-7")
        finally:
            await app.shutdown()

    run(main)


def test_send_event_transactional_publishes_through_the_outbox(tmp_path: Path) -> None:
    delivered: list[Event] = []

    async def main() -> str:
        app = app_on(tmp_path, outbox_enabled=True, outbox_sink=delivered.append)
        await app.initialize()
        try:
            iid = await edda_t_ship.start(input=Parcel(parcel_id="P-3", weight=1.0))
            # The relay: this pass, or the background worker's (which may hold a row a while).
            for _ in range(200):
                if len(delivered) >= 2:
                    break
                await app.eddic.run_due()
                await asyncio.sleep(0.02)
            return iid
        finally:
            await app.shutdown()

    iid = run(main)
    assert [(e.type, e.source, e.data) for e in delivered] == [
        ("label.printed", "post", {"parcel_id": "P-3", "label": "L-P-3"}),  # a model, as JSON
        ("parcel.sent", "post", {"parcel": "P-3"}),  # published by the workflow itself
    ]
    with App(db_url=f"sqlite:///{tmp_path / 'post.db'}") as app:
        assert app.get_instance(iid)["output_data"] == {"parcel_id": "P-3", "label": "L-P-3"}


def test_without_a_sink_the_events_wait_in_the_outbox_and_a_broker_url_is_the_sink(
    tmp_path: Path,
) -> None:
    delivered: list[Event] = []

    async def main() -> None:
        app = app_on(tmp_path, outbox_enabled=True)  # the tutorial's: no broker_url
        await app.initialize()
        try:
            await edda_t_ship.start(input=Parcel(parcel_id="P-4", weight=1.0))
            assert await app.eddic.run_due() == 0
        finally:
            await app.shutdown()
        later = app_on(tmp_path, outbox_enabled=True, outbox_sink=delivered.append)
        await later.initialize()
        try:
            await later.eddic.run_due()
        finally:
            await later.shutdown()

    run(main)
    assert [e.type for e in delivered] == ["label.printed", "parcel.sent"]  # kept, then sent
    assert app_on(tmp_path, broker_url="https://broker.example/events").broker_url is not None


def test_a_failed_workflow_compensates_newest_first_and_start_raises_the_activitys_exception(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    delivered: list[Event] = []

    async def main() -> None:
        app = app_on(tmp_path, outbox_enabled=True, outbox_sink=delivered.append)
        await app.initialize()
        try:
            del printed[:]
            with pytest.raises(ParcelLost, match="P-13 fell off the truck") as raised:
                await edda_t_ship.start(
                    input=Parcel(parcel_id="P-13", weight=4.0), instance_id="p13"
                )
            assert type(raised.value) is ParcelLost  # the activity's own exception object
            assert printed == ["unlabel P-13", "unweigh 4.0"]  # newest first
            info = await app.storage.get_instance("p13")
            assert info is not None and info["status"] == "failed"
            assert info["error"]["message"].endswith("ParcelLost: P-13 fell off the truck")
            # a repeated start runs nothing, and raises what is stored: WorkflowFailed
            with pytest.raises(WorkflowFailed, match="P-13 fell off the truck"):
                await edda_t_ship.start(
                    input=Parcel(parcel_id="P-13", weight=4.0), instance_id="p13"
                )
            assert printed == ["unlabel P-13", "unweigh 4.0"]
            await app.eddic.run_due()
        finally:
            await app.shutdown()

    run(main)
    out = capsys.readouterr().out
    assert out.count("💥") == 1  # reported once, by the run that failed
    # the type named as the traceback names it (module and class; bare for builtins)
    assert f"💥 {__name__}.ParcelLost: P-13 fell off the truck\n" in out
    assert [e.type for e in delivered] == ["label.printed", "label.voided"]


def test_start_raises_what_the_workflow_itself_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        app = app_on(tmp_path)
        await app.initialize()
        try:
            del printed[:]
            with pytest.raises(KeyError, match="P-5"):
                await edda_t_own_error.start(input=Parcel(parcel_id="P-5", weight=3.0))
            assert printed == ["unweigh 3.0"]
        finally:
            await app.shutdown()

    run(main)
    assert "💥 KeyError: 'P-5'\n" in capsys.readouterr().out


def test_workflows_with_several_parameters_or_none(tmp_path: Path) -> None:
    async def main() -> None:
        app = app_on(tmp_path)
        await app.initialize()
        try:
            pair = await edda_t_pair.start(left="L")
            info = await app.storage.get_instance(pair)
            assert info is not None
            assert info["input_data"] == {"left": "L", "right": "R"}  # stored as one model
            assert info["output_data"] == {"left": "L", "right": "R"}
            nothing = await edda_t_nothing.start(lock_timeout_seconds=30)
            assert await app.eddic.result(nothing) == "nothing"
        finally:
            await app.shutdown()

    run(main)


def test_the_background_worker_fires_timers(tmp_path: Path) -> None:
    async def main() -> None:
        app = app_on(tmp_path)
        await app.initialize()
        try:
            iid = await edda_t_nap.start(seconds=0.2)
            info = await app.storage.get_instance(iid)
            assert info is not None and info["status"] == "waiting_for_timer"
            assert await app.eddic.wait(iid, timeout=30) == "rested"  # no run_due: serve did it
        finally:
            await app.shutdown()

    run(main)


def test_bad_arguments_get_clear_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    with pytest.raises(TypeError, match="'hooks' is not provided"):
        EddaApp(service_name="s", db_url=url, hooks=object())
    with pytest.raises(TypeError, match=r"unexpected keyword argument.*pool"):
        EddaApp(service_name="s", db_url=url, pool=3)
    with pytest.raises(TypeError, match="outbox_enabled"):
        EddaApp(service_name="s", db_url=url, outbox_enabled="yes")
    with pytest.raises(ValueError, match="http"):
        EddaApp(service_name="s", db_url=url, broker_url="ftp://broker")
    with pytest.raises(ValueError, match="not both"):
        EddaApp(service_name="s", db_url=url, broker_url="http://b", outbox_sink=print)
    with pytest.raises(TypeError, match="db_url"):
        EddaApp(service_name="s", db_url=None)  # type: ignore[arg-type]

    def sync_workflow(ctx: WorkflowContext) -> None: ...

    async def variadic(ctx: WorkflowContext, **params: Any) -> None: ...

    async def no_ctx() -> None: ...

    with pytest.raises(TypeError, match="must be an async function"):
        workflow(sync_workflow)
    with pytest.raises(TypeError, match=r"\*\*params"):
        workflow(variadic)
    with pytest.raises(TypeError, match="event_handler"):
        workflow(event_handler=True)
    with pytest.raises(TypeError, match="first parameter"):
        activity(no_ctx)
    with pytest.raises(TypeError, match="@compensation"):
        on_failure(no_ctx)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RetryPolicy"):
        activity(retry_policy=3)(no_ctx)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="workflow's ctx first"):
        edda_t_weigh(None, 1.0)
    with pytest.raises(ValueError, match="JSON"):
        run(lambda: send_event_transactional(None, "t", "s", {}, content_type="text/plain"))
    with pytest.raises(TypeError, match="send_event_transactional"):
        run(lambda: send_event_transactional(None, "t", "s", {}))

    async def starts() -> None:
        with pytest.raises(RuntimeError, match="EddaApp is properly initialized"):
            await edda_t_pair.start(left="L")  # no app initialized
        app = EddaApp(service_name="s", db_url=url)
        await app.initialize()
        try:
            with pytest.raises(TypeError, match=r"edda_t_ship.start\(input=\.\.\.\).*by name"):
                await edda_t_ship.start(Parcel(parcel_id="P-1", weight=1))
            with pytest.raises(TypeError, match=r"edda_t_ship.start\(input=\.\.\.\)"):
                await edda_t_ship.start(parcel=Parcel(parcel_id="P-1", weight=1))
            with pytest.raises(pydantic.ValidationError):
                await edda_t_ship.start(input={"parcel_id": "not a parcel id", "weight": 1})
            assert await app.eddic.list_instances() == []  # nothing written for bad input
        finally:
            await app.shutdown()

    run(starts)
