"""The documentation runs: every Python block of README.md and docs/*.md, and every example script.

The rule for code in the docs:

- A fenced block tagged ``python`` is run. A page's blocks run in order, in one namespace (a
  fresh ``__main__`` module), in a fresh Python process whose working directory is a temporary
  folder, so relative ``sqlite:///`` databases land there and names registered by one page
  (workflows, activities) never meet another page's.
- A ``text output`` block right after a ``python`` block is what that block prints, exactly.
- A block tagged ``python fragment`` is deliberately incomplete: it is not run, and each one is
  reported as a skipped test, so fragments stay visible.
- ``bash`` and ``console`` blocks are not run, but every ``eddic`` subcommand they name exists,
  and so does every file of this repository they name.
- Every fenced block says what it is (no bare fences), and relative links point to files that
  exist.

Every script in examples/ runs as a subprocess and exits 0.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from eddic.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("test_"))
TIMEOUT = 180

RUN, FRAGMENT, OUTPUT = "python", "python fragment", "text output"
SHELL = ("bash", "console")
KNOWN = {RUN, FRAGMENT, OUTPUT, *SHELL, "text", "toml", "json"}

FENCE = re.compile(r"^(`{3,}|~{3,})\s*(.*?)\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # the line of the opening fence (1-based)
    info: str
    source: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, info = opening.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not (
            lines[j].startswith(fence[0] * len(fence)) and not lines[j].strip(fence[0]).strip()
        ):
            body.append(lines[j])
            j += 1
        assert j < len(lines), f"{page.relative_to(ROOT)}:{i + 1}: unclosed fence"
        found.append(Block(page, i + 1, " ".join(info.split()), "\n".join(body) + "\n"))
        i = j + 1
    return found


BLOCKS = {page: blocks_of(page) for page in PAGES}
RUNNABLE = [page for page in PAGES if any(b.info == RUN for b in BLOCKS[page])]
FRAGMENTS = [b for page in PAGES for b in BLOCKS[page] if b.info == FRAGMENT]


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


# Runs the blocks given on stdin in one fresh ``__main__`` module; prints, as its last line, a
# JSON list of what each block printed. Each block is compiled under the page's own file name,
# padded to its line, so that a traceback points at the line of the page and shows it.
RUNNER = """
import contextlib, io, json, sys, types

blocks = json.load(sys.stdin)
main = types.ModuleType("__main__")
main.__dict__["__builtins__"] = __builtins__
sys.modules["__main__"] = main
printed = []
real_stdout = sys.stdout
for block in blocks:
    source = "\\n" * block["line"] + block["source"]
    code = compile(source, block["page"], "exec")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(code, main.__dict__)
    finally:
        real_stdout.write(out.getvalue())
    printed.append(out.getvalue())
real_stdout.write("\\n" + json.dumps(printed) + "\\n")
"""


@pytest.mark.parametrize("page", RUNNABLE, ids=page_id)
def test_the_python_blocks_of_a_page_run_and_print_what_the_page_shows(
    page: Path, tmp_path: Path
) -> None:
    blocks = BLOCKS[page]
    runnable = [b for b in blocks if b.info == RUN]
    payload = [{"page": str(b.page), "line": b.line, "source": b.source} for b in runnable]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(payload),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{page_id(page)} failed:\n{done.stdout}\n{done.stderr}"
    outputs = json.loads(done.stdout.splitlines()[-1])
    printed = dict(zip([b.line for b in runnable], outputs, strict=True))

    shown = 0
    for before, after in itertools.pairwise(blocks):
        if after.info != OUTPUT:
            continue
        assert before.info == RUN, f"{after.where}: an output block follows a block that is not run"
        assert printed[before.line].rstrip() == after.source.rstrip(), (
            f"{before.where} printed something else than {after.where} shows:\n"
            f"{printed[before.line]}"
        )
        shown += 1
    assert shown == sum(b.info == OUTPUT for b in blocks)


if FRAGMENTS:

    @pytest.mark.parametrize("block", FRAGMENTS, ids=lambda b: b.where)
    def test_a_fragment_is_not_run(block: Block) -> None:
        pytest.skip(f"{block.where} is marked `python fragment`: not run")


def test_every_fenced_block_says_what_it_is() -> None:
    untagged = [b.where for page in PAGES for b in BLOCKS[page] if b.info not in KNOWN]

    assert untagged == [], f"blocks tagged none of {sorted(KNOWN)}"


def test_the_readme_example_completes() -> None:
    first = next(b for b in BLOCKS[ROOT / "README.md"] if b.info == RUN)
    follows = BLOCKS[ROOT / "README.md"][BLOCKS[ROOT / "README.md"].index(first) + 1]

    assert follows.info == OUTPUT and "completed" in follows.source.split()


# -- shell blocks: the commands and files they name exist -----------------------------------------

GLOBAL_OPTIONS_WITH_VALUES = {"--db", "--app", "--import"}
REPO_PATH = re.compile(r"^(?:\./)?(?:examples|tests|docs|stdlib|kernel|\.ci)/[\w./-]*\w$")


def eddic_subcommands() -> dict[str, set[str]]:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    found: dict[str, set[str]] = {}
    for name, sub in subparsers.choices.items():
        nested = [a for a in sub._actions if a.dest == "outbox_command"]
        found[name] = set(nested[0].choices) if nested else set()
    return found


def shell_commands(block: Block) -> list[list[str]]:
    commands = []
    for raw in block.source.splitlines():
        line = raw.strip()
        if block.info == "console":
            if not line.startswith("$ "):
                continue  # output
            line = line[2:]
        line = re.sub(r"\s#.*$", "", line).replace("[", " ").replace("]", " ")
        for part in re.split(r"&&|\|\||[|;]", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            words = [w for w in words if w != "..."]
            while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value command
                words = words[1:]
            if words:
                commands.append(words)
    return commands


def test_shell_blocks_name_eddic_subcommands_and_files_that_exist() -> None:
    subcommands = eddic_subcommands()
    problems = []
    for page in PAGES:
        for block in BLOCKS[page]:
            if block.info not in SHELL:
                continue
            for words in shell_commands(block):
                for word in words:
                    path = word.split("=", 1)[-1]
                    if REPO_PATH.match(path) and not (ROOT / path).exists():
                        problems.append(f"{block.where}: no file {path}")
                if words[0] != "eddic":
                    continue
                rest = iter(words[1:])
                sub = None
                for word in rest:
                    if word in GLOBAL_OPTIONS_WITH_VALUES:
                        next(rest, None)
                    elif not word.startswith("-"):
                        sub = word
                        break
                if sub not in subcommands:
                    problems.append(f"{block.where}: no subcommand `eddic {sub}`")
                elif subcommands[sub]:  # `eddic outbox retry ...`: the word right after it
                    action = next(rest, "-")
                    if not action.startswith("-") and action not in subcommands[sub]:
                        problems.append(f"{block.where}: no `eddic {sub} {action}`")

    assert problems == []


LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_point_to_files_that_exist() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page_id(page)}: {target}")

    assert broken == []


# -- the example scripts --------------------------------------------------------------------------


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_every_example_script_runs(script: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"


def test_the_order_saga_with_failing_shipping_compensates_newest_first(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "order_processing.py"), "--fail-shipping"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )

    assert done.returncode == 1, done.stderr  # the workflow failed, after compensating
    out = done.stdout
    assert out.index("Refunding payment") < out.index("Cancelling inventory reservation"), out
