"""SQLite's throughput before and after a change, side by side: ``throughput.py`` of two trees.

    python tests/benchmarks/sqlite_before_after.py \\
        --before /tmp/eddic-before:/tmp/venv-before --after /tmp/eddic-head:/tmp/venv-head \\
        [--rounds 3] [--starters 1x1,1x8] [--workflows 1000]

Each side is ``TREE:VENV``: a checkout of eddic (``git worktree add TREE COMMIT``) and a venv
with that checkout installed (``python -m venv VENV && VENV/bin/pip install -e TREE``), so each
side runs its own ``tests/benchmarks/throughput.py`` against its own ``eddic``. Rounds alternate
the sides, and the order flips every round (before, after; after, before; ...), so a drift of the
disk or of other jobs on the machine falls on both. Each run is
``throughput.py --repeats 1 --no-floor --starters ...`` (raw SQLite commits and eddic
alternating in chunks on one disk, at ``synchronous`` FULL and NORMAL; see that script): its
per-setting lines are parsed, and the medians over the rounds are printed per side with the
after/before ratios, of activities/s and of eddic's share of the raw commit rate measured in the
same run (the figure that cancels most of the disk's drift).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

LINE = re.compile(
    r"repeat \d+ (?P<sync>\w+)\s+(?P<starters>\d+x\d+): raw\s+(?P<raw>[\d,]+) commits/s \| "
    r"eddic\s+(?P<acts>[\d,]+) activities/s \(cpu (?P<cpu>[\d.]+) ms/activity, "
    r"(?P<commits>[\d.]+) commits/activity\) \| ratio\s+(?P<ratio>[\d.]+) %"
)


def side(spec: str) -> tuple[Path, Path]:
    tree, _, venv = spec.partition(":")
    if not venv:
        raise SystemExit(f"a side is TREE:VENV, not {spec!r}")
    return Path(tree), Path(venv)


def commit_of(tree: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()[:90]


def run(
    tree: Path, venv: Path, starters: str, workflows: int | None
) -> dict[str, dict[str, float]]:
    """One ``throughput.py`` run of a side: {"FULL 1x1": {"raw": ..., "acts": ..., ...}}."""
    args = [
        str(venv / "bin" / "python"),
        str(tree / "tests" / "benchmarks" / "throughput.py"),
        *("--repeats", "1", "--no-floor", "--starters", starters),
    ]
    if workflows is not None:
        args += ["--workflows", str(workflows)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=str(tree))
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    found: dict[str, dict[str, float]] = {}
    for m in LINE.finditer(out.stdout):
        found[f"{m['sync']} {m['starters']}"] = {
            name: float(m[name].replace(",", ""))
            for name in ("raw", "acts", "cpu", "commits", "ratio")
        }
    if not found:
        raise SystemExit(f"no figures in the output of {' '.join(args)}:\n{out.stdout}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="TREE:VENV")
    parser.add_argument("--after", required=True, help="TREE:VENV")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starters", default="1x1,1x8")
    parser.add_argument("--workflows", type=int, default=None)
    args = parser.parse_args()
    sides = {"before": side(args.before), "after": side(args.after)}
    for name, (tree, venv) in sides.items():
        print(f"{name:6}: {tree} ({commit_of(tree)}), {venv}")
    results: dict[str, list[dict[str, dict[str, float]]]] = {"before": [], "after": []}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for name in order:
            got = run(*sides[name], args.starters, args.workflows)
            results[name].append(got)
            text = " | ".join(
                f"{k}: {v['acts']:,.0f} act/s, raw {v['raw']:,.0f}/s, {v['ratio']:.1f} %"
                for k, v in got.items()
            )
            print(f"  round {r + 1} {name:6} {text}", flush=True)

    print(f"\nmedians of {args.rounds} rounds (after/before)")
    for key in results["before"][0]:
        med = {
            name: {
                f: statistics.median(run[key][f] for run in runs)
                for f in ("raw", "acts", "cpu", "commits", "ratio")
            }
            for name, runs in results.items()
        }
        b, a = med["before"], med["after"]
        print(
            f"  {key:12} activities/s {b['acts']:7,.0f} -> {a['acts']:7,.0f} "
            f"({a['acts'] / b['acts']:.2f}x) | share of raw {b['ratio']:5.1f} % -> "
            f"{a['ratio']:5.1f} % ({a['ratio'] / b['ratio']:.2f}x) | raw {b['raw']:,.0f} / "
            f"{a['raw']:,.0f} commits/s | cpu {b['cpu']:.3f} -> {a['cpu']:.3f} ms/act | "
            f"commits/act {b['commits']:.2f} -> {a['commits']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
