"""Random kills during a run of many orders: whatever the kill, every order ends right.

For each seed, a worker starts 20 orders (every second one with shipping failing, so half of
them compensate) and is killed at a point drawn from the seed: at a random step write, inside a
random run of a random body, or in the outbox relay. Up to three recoveries in a row are then
killed too, each at a point of its own. Odd seeds start the orders from 4 threads, so that steps
share commits (group commit) and a kill can cut a shared commit. A last, clean recovery must
then leave every one of the 20 orders finished with each step recorded once, each event
published once and delivered at least once, and no more repeated side effects than there were
kills (times the starting threads: each thread has at most one body, or one result not yet
committed, in flight).

The number of seeds comes from ``EDDIC_CRASH_SEEDS`` (default 100: about 190 kills in about a
minute, the "few hundred points in CI" of the issue); the first seed from
``EDDIC_CRASH_FIRST_SEED`` (default 0). Thousands run fine by hand, e.g.::

    EDDIC_CRASH_SEEDS=2000 python -m pytest tests/crash/test_random_crashes.py -q

The same seeds run on PostgreSQL (ids ``postgres-seed-N``, each in a database of its own), with
the same checks. A PostgreSQL seed costs about 2 s instead of 0.5 s (every step is a commit that
waits for the server's fsync), so by default only the first 30 seeds run there (about 60 kills
in about a minute); ``EDDIC_CRASH_PG_SEEDS`` sets that number (``EDDIC_CRASH_SEEDS``, when set,
sets both)::

    EDDIC_CRASH_PG_SEEDS=500 python -m pytest tests/crash/test_random_crashes.py -q -k postgres

A failing seed is named in the test id and reproduces alone with ``-k "seed-1234"`` (on both
backends) or ``-k "postgres-seed-1234"``.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crash_harness import (
    FAILING_STEPS,
    STATS,
    Database,
    Workers,
    check_bodies_are_consistent,
    check_deliveries,
    check_order_finished_with_everything_recorded_once,
    crash_and_recover,
    on_both_backends,
    read_store,
)

ORDERS = 20  # ORD-2, ORD-4, ... fail to ship
STEP_WRITES = 10 * 4 + 10 * 6  # a start and one write per body, for the happy and failing halves
EVENTS = 10 * 3 + 10 * 4
BODY_RUNS = {"reserve": 20, "pay": 20, "ship": 20, "refund": 10, "cancel": 10}

FIRST_SEED = int(os.environ.get("EDDIC_CRASH_FIRST_SEED", "0"))
SEEDS = range(FIRST_SEED, FIRST_SEED + int(os.environ.get("EDDIC_CRASH_SEEDS", "100")))
PG_SEED_COUNT = os.environ.get("EDDIC_CRASH_PG_SEEDS", os.environ.get("EDDIC_CRASH_SEEDS", "30"))
PG_SEEDS = range(FIRST_SEED, FIRST_SEED + int(PG_SEED_COUNT))


def random_crash_point(rng: random.Random, scale: float) -> str:
    """A crash point somewhere in a run; ``scale`` shrinks the ranges for a recovery run."""
    draw = rng.random()
    if draw < 0.6:
        n = rng.randint(1, max(1, int(STEP_WRITES * scale)))
        return f"write:{n}:{rng.choice(['before', 'uncommitted', 'committed'])}"
    if draw < 0.85:
        step = rng.choice(FAILING_STEPS)
        k = rng.randint(1, max(1, int(BODY_RUNS[step] * scale)))
        return f"body:{step}:{rng.choice(['before', 'inside', 'after'])}:{k}"
    return f"relay:{rng.randint(1, max(1, int(EVENTS * scale)))}"


def crash_points_for(seed: int) -> list[str]:
    """The first run's crash point, then zero to three for the recoveries that follow it.

    Each recovery has less left to do than the run before it, so its point is drawn from a
    smaller range; a point past the end of the work leaves that run unkilled.
    """
    rng = random.Random(seed)
    points = [random_crash_point(rng, 1.0)]
    for k in range(rng.randint(0, 3)):
        points.append(random_crash_point(rng, 0.3 / (k + 1)))
    return points


def seeds(numbers: range) -> list[Any]:
    return [pytest.param(seed, id=f"seed-{seed}") for seed in numbers]


@pytest.mark.parametrize(("backend", "seed"), on_both_backends(seeds(SEEDS), seeds(PG_SEEDS)))
def test_randomly_killed_workers_leave_every_order_finished_and_recorded_once(
    workers: Workers, request: pytest.FixtureRequest, tmp_path: Path, backend: str, seed: int
) -> None:
    crashes = crash_points_for(seed)
    threads = 4 if seed % 2 else 1  # odd seeds: starts from 4 threads share commits
    story = crash_and_recover(
        workers,
        Database.open(request, backend, tmp_path / "orders.db"),
        fail_shipping="alternate",
        crashes=crashes,
        instances=ORDERS,
        threads=threads,
    )
    assert story.runs[-1].returncode == 0, f"seed {seed}: recovery failed\n{story}"
    assert all(run.returncode in (0, -9) for run in story.runs), f"seed {seed}\n{story}"
    store = read_store(story.database)

    reruns: Counter[str] = Counter()
    redeliveries = 0
    for n in range(1, ORDERS + 1):
        order, fails = f"ORD-{n}", n % 2 == 0
        check_order_finished_with_everything_recorded_once(store, order, fails)
        check_bodies_are_consistent(store, order, fails)
        for step in FAILING_STEPS:
            reruns["starts"] += max(0, store.runs(order, step, "start") - 1)
            reruns["ends"] += max(0, store.runs(order, step, "end") - 1)
        redeliveries += sum(count - 1 for count in check_deliveries(store, order).values())

    relay_kills = sum(run.killed for run in story.runs if run.crash.startswith("relay"))
    # A kill cuts at most one body (or one not yet committed result) per starting thread.
    body_kills = (story.kills - relay_kills) * threads
    assert reruns["starts"] <= body_kills, f"seed {seed}: {reruns} for {crashes}\n{story}"
    assert reruns["ends"] <= body_kills, f"seed {seed}: {reruns} for {crashes}\n{story}"
    assert redeliveries <= relay_kills, f"seed {seed}: {redeliveries} redeliveries\n{story}"

    STATS[f"random seeds ({backend})"] += 1
    STATS[f"random seeds with 4 starting threads ({backend})"] += threads > 1
    STATS[f"random orders checked ({backend})"] += ORDERS
    STATS[f"random runs killed ({backend})"] += story.kills
    STATS[f"random bodies rerun ({backend})"] += reruns["starts"]
    STATS[f"random events redelivered ({backend})"] += redeliveries
