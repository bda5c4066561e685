"""A real ``eddic.App`` on PostgresStorage: built on an in-memory SQLite URL (App chooses its
backend from the URL, which knows no postgres yet), then given the PostgreSQL store before
``initialize``."""

from __future__ import annotations

from typing import Any

from eddic import App, Event, Publish, Sleep, WaitEvent, WorkflowContext, activity, workflow
from eddic.runtime.leases import LeaseKeeper
from eddic.storage.postgres.store import PostgresStorage

sent: list[Event] = []


@activity
def pg_double(x: int) -> int:
    return 2 * x


@workflow
def pg_flow(ctx: WorkflowContext, x: int) -> dict[str, Any]:
    doubled = yield pg_double(x)
    yield Sleep(0)
    event = yield WaitEvent("pg.go")
    yield Publish("pg.done", data={"doubled": doubled})
    return {"doubled": doubled, "event": event.data}


def _app(url: str) -> App:
    app = App(db_url="sqlite:///:memory:", outbox_enabled=True, outbox_sink=sent.append)
    store = PostgresStorage(url)
    app.storage = store  # type: ignore[assignment]
    worker = app._worker
    worker.storage = store
    worker._keeper = LeaseKeeper(store)
    return app


def test_an_app_runs_a_workflow_on_postgres(postgres_schema_url: str) -> None:
    sent.clear()
    app = _app(postgres_schema_url)
    app.initialize()
    try:
        iid = app.start(pg_flow, input=3)
        for _ in range(5):
            app.run_due()
        assert app.get_instance(iid)["status"] == "waiting_for_event"
        assert app.send_event("pg.go", data={"ok": True}) == [iid]
        for _ in range(5):
            app.run_due()
        assert app.result(iid) == {"doubled": 6, "event": {"ok": True}}
        assert [e.data for e in sent] == [{"doubled": 6}]
        assert [h["record"] for h in app.history(iid)][:2] == ["scheduled", "resolved"]
    finally:
        app.shutdown()
