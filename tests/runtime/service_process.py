"""A service module written for a test and a serving worker running it in another process (not
a test module: never collected)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType


def write_service(folder: Path, name: str, source: str) -> ModuleType:
    """``folder/name.py`` holding ``source``, imported here too (its workflows registered)."""
    (folder / f"{name}.py").write_text(source)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))


def serve(url: str, folder: Path, module: str, **env: str) -> subprocess.Popen[str]:
    """``eddic serve`` on ``url`` importing ``module`` from ``folder``, polling once a minute
    (so that only a wake-up can make it act sooner), once it has said it serves."""
    path = f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "eddic", "serve", "--db", url, "--poll", "60", "--import", module],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env, "PYTHONPATH": path},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("serving ")
    return proc
