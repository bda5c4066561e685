"""``eddic ui`` for real: the command serves the viewer over a socket until interrupted, and a
replay page reports a divergence when the loaded code no longer matches the history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import viewer_workflows as wf
from live_server import free_port
from starlette.testclient import TestClient

from eddic import App, decorators

HERE = Path(__file__).resolve().parent


def test_eddic_ui_serves_the_viewer_until_interrupted(app: App, tmp_path: Path) -> None:
    app.start(wf.view_order, "order-1", instance_id="order-1")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eddic",
            "--db",
            app.storage.db_url,
            "--import",
            "viewer_workflows",
            "ui",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/instance?id=order-1") as r:
                    page = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "eddic ui did not answer"
                time.sleep(0.1)
        assert "order-1" in page and "payment.confirmed" in page
        assert "view_refund" in page  # the kernel's view: the code was imported (--import)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"on http://127.0.0.1:{port}/" in out


def test_the_replay_page_reports_a_divergence_of_the_loaded_code(
    app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.start(wf.view_order, "order-1", instance_id="order-1")
    registry = dict(decorators._WORKFLOWS)
    registry["view_order"] = registry["view_order_changed"]  # a deploy changed the code
    monkeypatch.setattr(decorators, "_WORKFLOWS", registry)
    page = client.get("/replay", params={"id": "order-1"})
    assert page.status_code == 200
    assert 'id="divergence"' in page.text
    assert "non-determinism in instance" in page.text
    assert "view_reserve" in page.text and "view_charge" in page.text
    instance = client.get("/instance", params={"id": "order-1"}).text
    assert "diverges from the history" in instance


def test_an_async_app_is_viewed_through_its_app(tmp_path: Path) -> None:
    from eddic import AsyncApp
    from eddic.web import create_app

    service = AsyncApp(db_url=f"sqlite:///{tmp_path / 'async.db'}")
    try:
        service.app.start(wf.view_order, "order-1", instance_id="order-1")
        with TestClient(create_app(service), base_url="http://127.0.0.1") as client:
            page = client.get("/instance", params={"id": "order-1"})
            assert page.status_code == 200 and "payment.confirmed" in page.text
    finally:
        service.app.shutdown()
