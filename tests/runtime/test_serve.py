"""The worker loop: timers created by another process fire in this one's serve()."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from eddic import App

HERE = Path(__file__).parent


def test_a_timer_created_in_another_process_fires_in_this_processs_serve(db_path: Path) -> None:
    sys.path.insert(0, str(HERE))
    try:
        import serve_workflows  # noqa: F401 - registers serve_nap here too
    finally:
        sys.path.remove(str(HERE))
    url = f"sqlite:///{db_path}"
    with App(db_url=url, timer_poll_interval=0.05) as app:
        worker = threading.Thread(target=app.serve, daemon=True)
        worker.start()
        started = subprocess.run(
            [sys.executable, str(HERE / "serve_workflows.py"), url, "0.3"],
            capture_output=True,
            text=True,
            check=True,
        )
        iid = started.stdout.strip()
        deadline = time.monotonic() + 20
        while app.get_instance(iid)["status"] != "completed" and time.monotonic() < deadline:
            time.sleep(0.05)
        app.shutdown()
        worker.join(5)
    with App(db_url=url) as check:
        assert check.result(iid) == "woke"
    assert not worker.is_alive()
