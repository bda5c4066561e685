"""Crashes and retry counting: "a crash during backoff neither loses nor repeats the count; a crash
during an attempt counts as an attempt" (design, section 3).

The worker's ``flaky`` workflows call one activity that always fails, with
``RetryPolicy(max_attempts=3)``: without any crash its body runs with ``ctx.attempt`` 1, 2 and 3,
and the recorded failure says 3 attempts. Killing the worker must not change that count, on
SQLite or on PostgreSQL (ids prefixed ``postgres-``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from crash_harness import (
    Database,
    Store,
    Workers,
    crash_and_recover,
    on_both_backends,
    read_store,
)

ORDER = "ORD-1"
MAX_ATTEMPTS = 3


def attempts_begun(store: Store) -> list[int]:
    return [e.attempt for e in store.effects if e.step == "flaky" and e.phase == "start"]


def recorded_failure(store: Store) -> dict[str, object]:
    resolved = [r for r in store.history["crash-ORD-1"] if r["record"] == "resolved"]
    assert len(resolved) == 1, "the activity must be resolved exactly once"
    return json.loads(resolved[0]["failure"])


@pytest.mark.parametrize(
    ("backend", "crashes"),
    on_both_backends(
        [
            pytest.param(["write:2:committed"], id="killed-while-waiting-before-attempt-2"),
            pytest.param(
                ["write:2:committed", "write:2:committed"],
                id="killed-while-waiting-before-attempts-2-and-3",
            ),
        ]
    ),
)
def test_a_crash_during_the_backoff_neither_loses_nor_repeats_an_attempt(
    workers: Workers,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    backend: str,
    crashes: list[str],
) -> None:
    database = Database.open(request, backend, tmp_path / "flaky.db")
    story = crash_and_recover(workers, database, crashes=crashes, workflow="flaky-backoff")
    assert all(run.killed for run in story.runs[:-1]), str(story)
    assert story.runs[-1].returncode == 0, str(story)
    store = read_store(story.database)

    assert store.instances["crash-ORD-1"]["status"] == "failed"
    assert attempts_begun(store) == [1, 2, 3]
    assert recorded_failure(store)["attempts"] == MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("backend", "crash"),
    on_both_backends(
        [
            pytest.param("body:flaky:inside:1", id="killed-inside-attempt-1"),
            pytest.param("body:flaky:inside:2", id="killed-inside-attempt-2"),
        ]
    ),
)
def test_a_crash_during_an_attempt_counts_as_one_of_its_max_attempts(
    workers: Workers, request: pytest.FixtureRequest, tmp_path: Path, backend: str, crash: str
) -> None:
    database = Database.open(request, backend, tmp_path / "flaky.db")
    story = crash_and_recover(workers, database, crashes=[crash], workflow="flaky")
    assert story.runs[0].killed, str(story)
    assert story.runs[-1].returncode == 0, str(story)
    store = read_store(story.database)

    assert store.instances["crash-ORD-1"]["status"] == "failed"
    # The killed attempt was one of the three: no body may begin a fourth.
    assert attempts_begun(store) == [1, 2, 3]
    assert recorded_failure(store)["attempts"] == MAX_ATTEMPTS
