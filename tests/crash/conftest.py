"""Fixtures for the crash tests: one worker launcher for the session, and a summary of the kills."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from crash_harness import STATS, Workers


@pytest.fixture(scope="session")
def workers() -> Iterator[Workers]:
    launcher = Workers()
    try:
        yield launcher
    finally:
        launcher.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if STATS:
        line = ", ".join(f"{name}: {count}" for name, count in sorted(STATS.items()))
        terminalreporter.write_line(f"crash tests: {line}")
