"""Every test of a module that drives workflows through ``kernel_histories`` runs twice: with
the workflows as written (generator functions) and as their ``async def`` twins, so that both
styles are held to the same behaviour (design §9)."""

from __future__ import annotations

from collections.abc import Iterator

import kernel_histories
import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = vars(metafunc.module)
    if any(name in names for name in ("replayed", "interpreter", "in_style")):
        metafunc.fixturenames.append("workflow_style")
        metafunc.parametrize("workflow_style", ["generator", "async"])


@pytest.fixture
def workflow_style(request: pytest.FixtureRequest) -> Iterator[str]:
    style = str(request.param)
    kernel_histories.STYLE[0] = style
    try:
        yield style
    finally:
        kernel_histories.STYLE[0] = "generator"
