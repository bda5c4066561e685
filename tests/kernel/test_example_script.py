"""examples/kernel_in_a_script.py runs on its own and shows replay, a decision and a divergence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "kernel_in_a_script.py"


def test_the_kernel_example_script_shows_replay_a_new_decision_and_a_non_determinism_error():
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    out = done.stdout
    # 1. a recorded history is replayed
    assert "Replaying a recorded history" in out
    assert "replayed 4 records: phase=running" in out
    # 2. a new decision follows it, and the live run completes
    assert "decided: #3 scheduled event 'warehouse.packed'" in out
    assert "decided: #4 scheduled activity 'ship_parcel'" in out
    assert "phase=completed" in out
    # 3. changed code meets the recorded history: a non-determinism error, caught and printed
    assert "NonDeterminismError at seq 1" in out
    assert "history recorded: activity 'reserve_stock' at seq 1" in out
    assert "code yields now:  activity 'charge_card' at seq 1" in out
    assert "Likely cause" in out
    assert "phase=broken; decide() now refuses" in out
    # and a saga: the failed payment leads to the compensation of the reservation
    assert "scheduled compensation 'release_stock'" in out
    assert done.stderr == ""
