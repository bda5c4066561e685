"""The eddic pytest plugin (entry point ``pytest11``, loaded automatically once eddic is installed).

Fixtures:

- ``eddic_env``: a :class:`~eddic.testing.WorkflowEnvironment` (in-memory database, frozen time,
  activity overrides undone after the test).
- ``eddic_app``: its :class:`~eddic.App`; ``eddic_clock``: its :class:`~eddic.testing.FrozenClock`.
- ``eddic_start_time``: where frozen time starts (2026-01-01T00:00:00Z); override it in a
  ``conftest.py`` to start elsewhere.

eddic is imported when a fixture is first used, so merely having it installed costs a test
session nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..runtime.app import App
    from . import FrozenClock, WorkflowEnvironment


@pytest.fixture
def eddic_start_time() -> datetime:
    """Where the frozen clock of ``eddic_env`` starts; override to change it."""
    from .kernel_driver import DEFAULT_START

    return DEFAULT_START


@pytest.fixture
def eddic_env(eddic_start_time: datetime) -> Iterator[WorkflowEnvironment]:
    """An in-memory eddic app under frozen time, closed (and overrides undone) after the test."""
    from . import WorkflowEnvironment

    with WorkflowEnvironment(start=eddic_start_time) as env:
        yield env


@pytest.fixture
def eddic_app(eddic_env: WorkflowEnvironment) -> App:
    """The ``App`` of ``eddic_env``."""
    return eddic_env.app


@pytest.fixture
def eddic_clock(eddic_env: WorkflowEnvironment) -> FrozenClock:
    """The frozen clock of ``eddic_env``."""
    return eddic_env.clock
