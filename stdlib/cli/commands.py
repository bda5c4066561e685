"""The ``eddic`` subcommands: what each one does, given the parsed arguments.

:class:`Session` resolves the global options: it imports the workflow code (``--import``,
``--app``) and finds the database. Read-only commands open it with :class:`ReadOnlyDatabase`;
commands that write get an initialised :class:`~eddic.App`.

What a command prints from the database goes through :mod:`eddic.cli.display`, which escapes stored
text; a record that cannot be read (``DamagedRecord``) is reported with the instance and record
it is in, and ``list`` and ``check`` go on with the other instances.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ..debug.replay import Replay, Step
from ..debug.timeline import FINISHED, STATUSES, build
from ..decorators import find_workflow, get_workflow
from ..errors import CliError, DamagedRecord, StorageError
from ..kernel import EddicError, UnknownWorkflow
from ..runtime.app import App
from ..runtime.outbox import discard, retry_failed
from ..storage import shown_url
from ..storage.sqlite.dbview import ReadOnlyDatabase
from . import display
from .display import escape
from .store_reader import Reader, StoreReader
from .store_reader import replay as replay_of_reader

EXIT_OK, EXIT_DIVERGED, EXIT_ERROR = 0, 1, 2
OUTBOX_STATUSES = ("pending", "failed", "sent", "discarded")


# -- finding the database and the code ----------------------------------------------------------


_SERVER_SCHEMES = ("postgresql://", "postgres://")


class Session:
    """What the global options resolve to: imported code, an optional App, the database URL."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.app: App | None = None
        self._load_code(getattr(args, "imports", None) or [], getattr(args, "app", None))

    def _load_code(self, modules: Sequence[str], app_ref: str | None) -> None:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: local modules import
        for name in modules:
            _import(name)
        if app_ref is None:
            return
        module_name, _, attribute = app_ref.partition(":")
        if not module_name or not attribute:
            raise CliError(f"--app wants module:attribute (e.g. service.main:app), got {app_ref!r}")
        module = _import(module_name)
        target: Any = module
        for part in attribute.split("."):
            if not hasattr(target, part):
                raise CliError(f"module {module_name!r} has no attribute {attribute!r} (--app)")
            target = getattr(target, part)
        if not isinstance(target, App) and callable(target):
            try:
                target = target()
            except Exception as exc:  # the user's factory: its failure is theirs to read
                raise CliError(
                    f"--app {app_ref}: calling it raised {type(exc).__name__}: {exc}"
                ) from None
        if not isinstance(target, App):
            raise CliError(f"--app {app_ref} is {type(target).__name__}, not an eddic App")
        self.app = target

    @property
    def db_url(self) -> str:
        given = getattr(self.args, "db", None) or os.environ.get("EDDIC_DB")
        if given:
            if given.startswith("sqlite:") or given.lower().startswith(_SERVER_SCHEMES):
                return given
            return f"sqlite:///{given}"  # a plain path
        if self.app is not None:
            return self.app.storage.db_url
        raise CliError("no database: pass --db PATH_OR_URL (or set EDDIC_DB), or --app module:app")

    def reader(self) -> Reader:
        """A read-only view: an SQLite file opened read-only, or another backend's store."""
        if self.db_url.lower().startswith(_SERVER_SCHEMES):
            return StoreReader(self.db_url)
        return ReadOnlyDatabase(self.db_url)

    def writer(self) -> App:
        """An initialised App on the database, for commands that write. Never creates a file."""
        url = self.db_url
        app = self.app if self.app is not None and self.app.storage.db_url == url else None
        self.reader().close()  # the same clear errors as the read-only commands
        if app is None:
            app = App(db_url=url)
        app.initialize()
        return app


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise CliError(f"cannot import module {name!r}: {type(exc).__name__}: {exc}") from None


# -- output helpers -----------------------------------------------------------------------------


class Style:
    """ANSI emphasis on a terminal (unless NO_COLOR is set); plain text otherwise."""

    def __init__(self) -> None:
        self.on = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.on else text

    def red(self, text: str) -> str:
        return f"\033[31m{text}\033[0m" if self.on else text


def note(text: str) -> None:
    """A line for the operator beside the output (stderr, so that piped output stays data)."""
    print(f"eddic: {escape(text)}", file=sys.stderr)


def error_line(text: str) -> None:
    print(f"eddic: error: {escape(text)}", file=sys.stderr)


def _statuses(values: Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values or []:
        for status in value.split(","):
            if status not in allowed:
                raise CliError(f"unknown status {status!r}; use one of: {', '.join(allowed)}")
            out.append(status)
    return out


# -- commands -----------------------------------------------------------------------------------


def cmd_list(session: Session, args: argparse.Namespace) -> int:
    statuses = _statuses(args.status, STATUSES) or None
    limit = None if args.all or not args.limit else args.limit
    with session.reader() as db:
        # One row more than asked tells whether the list is cut; only then is it worth a count.
        rows = db.list_instances(
            status=statuses, workflow=args.workflow, limit=None if limit is None else limit + 1
        )
        cut = limit is not None and len(rows) > limit
        total = db.count_instances(status=statuses, workflow=args.workflow) if cut else 0
    rows = rows[:limit]
    if args.json:
        print(display.to_json(rows))
    elif not rows:
        print("no instances")
    else:
        headers = ["ID", "WORKFLOW", "STATUS", "CREATED", "UPDATED"]
        print(display.table(headers, [_list_cells(r) for r in rows]))
    if cut:
        note(f"showing the newest {limit} of {total:,}; --limit N or --all for more")
    damaged = [r for r in rows if "damaged" in r]
    for row in damaged:
        error_line(row["damaged"])
    return EXIT_ERROR if damaged else EXIT_OK


def _list_cells(row: dict[str, Any]) -> list[str]:
    if "damaged" in row:  # its id (to look at it), what is known, and where it is damaged
        return [str(row["instance_id"]), str(row["workflow_name"]), "DAMAGED", "-", "-"]
    error = row.get("error")
    parked = isinstance(error, dict) and error.get("parked") and row.get("retry_after")
    return [
        row["instance_id"],
        row["workflow_name"],
        f"{row['status']} (parked)" if parked else row["status"],
        display.timestamp(row["created_at"]),
        display.timestamp(row["updated_at"]),
    ]


def cmd_show(session: Session, args: argparse.Namespace) -> int:
    with session.reader() as db:
        info = db.instance(args.instance_id)
        entries = build(db.history(args.instance_id), status=info["status"])
        now = _now_of(db, info)
    if args.json:
        data = {"instance": info, "history": [asdict(e) for e in entries]}
        if now is not None:
            data["waiting"], data["compensations"] = now
        print(display.to_json(data))
    else:
        print(display.instance_text(info, entries))
        if now is not None:
            print(display.now_text(*now))
    return EXIT_OK


def _now_of(db: Reader, info: dict[str, Any]) -> tuple[list[Any], list[Any]] | None:
    """What an unfinished instance waits on and would compensate now, by a replay: only when
    its workflow's code is loaded and the replay keeps to the history (else show says nothing)."""
    if info["status"] in FINISHED or find_workflow(info["workflow_name"]) is None:
        return None
    try:
        replay = replay_of_reader(db, info["instance_id"])
        replay.run(lambda step: None)
    except Exception:  # a damaged record, code that raises: `eddic replay` tells the details
        return None
    return None if replay.divergence is not None else (replay.waiting, replay.compensations)


class _Quit(Exception):
    """The user quit a stepping replay."""


def cmd_replay(session: Session, args: argparse.Namespace) -> int:
    style = Style()
    with session.reader() as db:
        info = db.instance(args.instance_id)
        replay = _replay_of(db, args.instance_id)
    run = info.get("run") or 1
    of_run = f", run {run}: continued as new {run - 1} times" if run > 1 else ""
    print(
        escape(
            f"replaying {info['instance_id']} (workflow {info['workflow_name']}, status "
            f"{info['status']}{of_run}, {len(replay.records)} records) with the current code"
        )
    )
    steps: list[Step] = []
    stepping = args.step

    def on_step(step: Step) -> None:
        nonlocal stepping
        steps.append(step)
        line = display.trace_line(step)
        print(style.red(line) if step.diverged else line, flush=True)
        if step.divergence is not None:
            print(display.divergence_text(step.divergence))
        elif stepping:
            print(display.step_detail(step))
            answer = _prompt(style)
            if answer == "q":
                raise _Quit
            stepping = answer != "c"

    try:
        replay.run(on_step)
    except _Quit:
        print(f"quit at seq {steps[-1].seq}")
        return EXIT_OK
    except OSError:  # the output went away (`| head`): main() handles it
        raise
    except Exception as exc:  # a record the kernel cannot take: say which instance and where
        after = f"after seq {steps[-1].seq}" if steps else "at its first record"
        raise CliError(
            f"the replay of instance {args.instance_id!r} stopped {after}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if replay.divergence is not None:
        return EXIT_DIVERGED
    waiting = [f"{s.kind} {s.name!r}" for s in steps if s.state == "pending"]
    end = f"the code now waits on {', '.join(waiting)}" if waiting else ""
    if not waiting and replay.phase is not None:
        end = f"the code ends {replay.phase.value}"
    print(escape(f"ok: the current code replays all {len(steps)} steps; {end}"))
    return EXIT_OK


def _prompt(style: Style) -> str:
    """Read one stepping command: Enter (next), c (continue), q (quit). End of input continues."""
    sys.stdout.write(style.bold("[Enter] next step, c continue, q quit> "))
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line or not sys.stdin.isatty():
        sys.stdout.write("\n")  # a terminal echoed the answer's newline; a pipe did not
    return line.strip().lower()[:1] if line else "c"


def _replay_of(db: Reader, instance_id: str) -> Replay:
    try:
        return replay_of_reader(db, instance_id)
    except UnknownWorkflow as exc:
        raise CliError(f"{exc} (replay runs your code: pass --import MODULE or --app)") from None
    except StorageError:  # names the instance and the record already
        raise
    except EddicError as exc:  # e.g. a stored value the current types refuse
        raise CliError(
            f"instance {instance_id!r} cannot be replayed: {type(exc).__name__}: {exc}"
        ) from None


def cmd_check(session: Session, args: argparse.Namespace) -> int:
    with session.reader() as db:
        if args.instance_ids:
            targets = [db.listed_instance(iid) for iid in args.instance_ids]
        else:
            unfinished = [s for s in STATUSES if s not in FINISHED]
            targets = db.list_instances(status=unfinished, workflow=args.workflow)
        results = [_check_one(db, info) for info in targets]
    damaged = [r for r in results if r["damaged"]]
    bad = [r for r in results if not r["ok"] and not r["damaged"]]
    code = EXIT_ERROR if damaged else EXIT_DIVERGED if bad else EXIT_OK
    if args.json:
        print(display.to_json(results))
        return code
    if not results:
        print("no unfinished instances to check")
        return EXIT_OK
    style = Style()
    for result in results:
        print(_check_line(result, style))
    for result in bad:
        if result["report"]:
            print()
            print(result["report"])
    print()
    ok = len(results) - len(bad) - len(damaged)
    summary = f"checked {len(results)} instance(s): {ok} replay, {len(bad)} would not"
    print(summary + (f", {len(damaged)} damaged" if damaged else ""))
    return code


def _check_line(result: dict[str, Any], style: Style) -> str:
    where = f"{result['instance_id']}  {result['workflow_name']}  {result['status']}"
    if result["ok"]:
        return escape(f"ok        {where}  ({result['steps']} steps)")
    if result["damaged"]:
        line = f"DAMAGED   {where}  {result['message']}"
    elif result["seq"] is not None:
        line = f"DIVERGES  {where}  at seq {result['seq']}"
    else:
        line = f"ERROR     {where}  {result['message']}"
    return style.red(escape(line))


def _check_one(db: Reader, info: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "instance_id": info["instance_id"],
        "workflow_name": info["workflow_name"],
        "status": info["status"],
        "ok": False,
        "damaged": "damaged" in info,
        "steps": 0,
        "seq": None,
        "message": info.get("damaged"),
        "recorded": None,
        "now": None,
        "report": None,
    }
    if result["damaged"]:
        return result
    try:
        replay = replay_of_reader(db, info["instance_id"])
        result["steps"] = sum(1 for _ in replay)
    except DamagedRecord as exc:
        result.update(damaged=True, message=str(exc))
        return result
    except UnknownWorkflow:
        result["message"] = (
            f"cannot check: workflow {info['workflow_name']!r} is not registered "
            "(import its module with --import or --app)"
        )
        return result
    except Exception as exc:  # one instance that cannot be replayed must not stop the check
        result["message"] = f"cannot replay: {type(exc).__name__}: {exc}"
        return result
    divergence = replay.divergence
    if divergence is None:
        result["ok"] = True
        return result
    result.update(
        seq=divergence.seq,
        message=divergence.message,
        recorded=divergence.recorded,
        now=divergence.now,
        report=display.divergence_text(divergence),
    )
    return result


def cmd_send_event(session: Session, args: argparse.Namespace) -> int:
    try:
        data = json.loads(args.data) if args.data is not None else None
    except json.JSONDecodeError as exc:
        raise CliError(f"--data is not valid JSON: {exc}") from None
    app = session.writer()
    try:
        reached = app.send_event(
            args.event_type, data, source=args.source, id=args.id, instance_id=args.instance
        )
    finally:
        app.shutdown()
    if args.json:
        print(display.to_json(reached))
        return EXIT_OK
    print(escape(f"event {args.event_type!r} reached {len(reached)} instance(s)"))
    for iid in reached:
        print(escape(iid))
    return EXIT_OK


def cmd_serve(session: Session, args: argparse.Namespace) -> int:
    app = session.writer()
    if args.once:
        try:
            print(f"advanced {app.run_due()} instance(s)")
        finally:
            app.shutdown()
        return EXIT_OK

    stopper = _Stopper(app)
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        print(f"serving {escape(shown_url(session.db_url))} (Ctrl-C to stop)", flush=True)
        app.serve(idle_sleep_max=args.poll, threads=args.threads)
    finally:
        stopper.served.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        app.shutdown()
    print("stopped", flush=True)
    return EXIT_OK


class _Stopper:
    """The SIGTERM/SIGINT handler of ``serve``: the first signal stops it after the steps in
    progress; a second one ends the process at once, with status 128 + the signal number."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.signals = 0
        self.served = threading.Event()  # set once serve() has returned

    def __call__(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            _say("stopping after the steps in progress (signal again to stop now)")
            # serve() clears a stop asked before its loop began (a signal just after "serving"
            # was printed), so the request is repeated until serve() has returned.
            threading.Thread(target=self._keep_asking, daemon=True).start()
            return
        # Stop now. A worker thread stuck in an activity cannot be interrupted, and Python
        # would wait for it at exit (so would App.shutdown), so the process ends right here.
        # Nothing is lost: the steps cut short are redone by recovery once their leases expire.
        _say("stopping now: the steps in progress are cut short (recovery redoes them)")
        os._exit(128 + signum)

    def _keep_asking(self) -> None:
        self.app.stop()
        while not self.served.wait(0.05):
            self.app.stop()


def _say(text: str) -> None:
    """Print from a signal handler: a busy or closed stdout must not keep serve from stopping."""
    with contextlib.suppress(OSError, RuntimeError, ValueError):  # RuntimeError: reentrant print
        print(text, flush=True)


def cmd_retry(session: Session, args: argparse.Namespace) -> int:
    app = session.writer()
    try:
        info = app.get_instance(args.instance_id)  # InstanceNotFound for an unknown id
        _require_code(info["workflow_name"])
        retried = app.retry(args.instance_id)
        after = app.get_instance(args.instance_id)
    finally:
        app.shutdown()
    iid = after["instance_id"]
    if not retried and after["status"] in FINISHED:
        print(escape(f"{iid} is already {after['status']}: nothing to retry"))
        return EXIT_OK
    if not retried:
        raise CliError(
            f"instance {iid!r} was not retried: a live worker holds it "
            f"(lease until {display.timestamp(after['lock_expires_at'])})"
        )
    print(escape(f"retried {iid}: now {after['status']}"))
    if after["retry_after"] is not None and after["status"] not in FINISHED:
        print(display.parked_text(after))  # the step failed again
        return EXIT_ERROR
    return EXIT_OK


def cmd_cancel(session: Session, args: argparse.Namespace) -> int:
    app = session.writer()
    try:
        info = app.get_instance(args.instance_id)  # InstanceNotFound for an unknown id
        try:
            get_workflow(info["workflow_name"])
            here = True  # its code is loaded (--import): the cancel runs here, now
        except EddicError:
            here = False  # left to a serving worker that has the code
        recorded = app.cancel(args.instance_id, args.reason, inline=here)
        after = app.get_instance(args.instance_id)
    finally:
        app.shutdown()
    iid = after["instance_id"]
    if not recorded:
        print(escape(f"{iid} is already {after['status']}: nothing to cancel"))
        return EXIT_OK
    if after["status"] in FINISHED or here:
        print(escape(f"cancelled {iid}: now {after['status']}"))
    else:
        print(escape(f"cancel of {iid} recorded: a worker with its code throws it in next"))
    return EXIT_OK


def _require_code(workflow_name: str) -> None:
    """Running an instance needs its workflow's code in this process (``--import``)."""
    try:
        get_workflow(workflow_name)
    except UnknownWorkflow:
        raise CliError(
            f"workflow {workflow_name!r} is not registered: retry runs the instance's code, "
            "pass --import MODULE (or --app module:app) with it"
        ) from None


def cmd_outbox(session: Session, args: argparse.Namespace) -> int:
    action = args.outbox_command
    if action in ("retry", "discard"):
        if (args.event_id is None) == (not args.all):
            raise CliError(f"outbox {action}: give one EVENT_ID or --all")
        app = session.writer()
        try:
            change = retry_failed if action == "retry" else discard
            count = change(app.storage, args.event_id)
        finally:
            app.shutdown()
        if args.event_id is not None and count == 0:
            raise CliError(f"no failed outbox row with event id {args.event_id!r}")
        done = "put back to pending" if action == "retry" else "discarded"
        print(f"{count} failed row(s) {done}")
        return EXIT_OK
    statuses = list(OUTBOX_STATUSES) if args.all else _statuses(args.status, OUTBOX_STATUSES)
    with session.reader() as db:
        rows = db.outbox(status=statuses or ["pending", "failed"], limit=args.limit)
    if args.json:
        print(display.to_json(rows))
        return EXIT_OK
    if not rows:
        print("outbox is empty" if args.all else "no pending or failed outbox rows")
        return EXIT_OK
    headers = ["EVENT ID", "INSTANCE", "SEQ", "TYPE", "STATUS", "ATTEMPTS", "LAST ERROR"]
    cells = [
        [
            r["event_id"],
            r["instance_id"],
            str(r["seq"]),
            r["event_type"],
            r["status"],
            str(r["attempts"]),
            r["last_error"] or "",
        ]
        for r in rows
    ]
    print(display.table(headers, cells))
    return EXIT_OK
