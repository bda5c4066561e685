"""``eddic``: inspect, replay, check and operate eddic databases from the command line.

The database comes from ``--db`` (a ``sqlite:///`` URL or a plain path), else ``EDDIC_DB``, else
the ``App`` named by ``--app module:attribute``. Workflow code comes from ``--app`` and
``--import MODULE`` (repeatable); ``list``, ``show`` and ``outbox`` need none and open the file
read-only. Exit status: 0 success, 1 a replay or check found a divergence (or could not verify
an instance), 2 an error (bad usage, missing database, unknown instance, code that does not
import, a damaged record: named, with its instance, record and column, never a traceback).
``serve`` stops after the steps in progress on SIGTERM or Ctrl-C; a second one ends it at once
with status 128 + the signal number (143 for SIGTERM, 130 for SIGINT). Stored text is printed
with its control characters escaped. The subcommands live in :mod:`eddic.cli.commands`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from typing import Any

from ..kernel import EddicError
from ..storage import StorageError, driver_errors
from .commands import (
    EXIT_ERROR,
    EXIT_OK,
    Session,
    cmd_cancel,
    cmd_check,
    cmd_list,
    cmd_outbox,
    cmd_replay,
    cmd_retry,
    cmd_send_event,
    cmd_serve,
    cmd_show,
)
from .display import escape
from .ui import cmd_ui

__all__ = ["build_parser", "main"]


# -- the parser ---------------------------------------------------------------------------------


def _count(text: str) -> int:
    """A row count: an integer, 0 or more (a negative LIMIT would mean no limit to SQLite)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _threads(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("database and code")
    group.add_argument("--db", metavar="URL", default=default, help="sqlite:///path or a path")
    group.add_argument(
        "--app", metavar="MODULE:ATTR", default=default, help="an App to use (imports MODULE)"
    )
    group.add_argument(
        "--import",
        dest="imports",
        metavar="MODULE",
        action="append",
        default=default,
        help="import MODULE to register its workflows (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eddic",
        description="Inspect, replay, check and operate eddic workflow databases.",
        epilog=(
            "Exit status: 0 ok, 1 divergence found, 2 error (a damaged record included); "
            "serve stopped by a second signal: 128 + its number."
        ),
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _global_options(sub, suppress=True)
        sub.set_defaults(handler=handler)
        return sub

    p = command("list", "list instances (newest first)", cmd_list)
    p.add_argument("--status", action="append", help="only these statuses (repeatable, a,b)")
    p.add_argument("--workflow", help="only instances of this workflow")
    p.add_argument("--limit", type=_count, default=100, help="at most N rows (0: all; 100)")
    p.add_argument("--all", action="store_true", help="every row (no limit)")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = command("show", "show an instance and its history timeline", cmd_show)
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = command("replay", "replay an instance through the current code", cmd_replay)
    p.add_argument("instance_id", metavar="ID")
    p.add_argument(
        "--step", action="store_true", help="interactive: Enter steps, c continues, q quits"
    )

    p = command("check", "check that the current code replays unfinished instances", cmd_check)
    p.add_argument("instance_ids", metavar="ID", nargs="*", help="only these instances")
    p.add_argument("--workflow", help="only instances of this workflow")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = command("send-event", "send an event (to one instance or to all waiting)", cmd_send_event)
    p.add_argument("event_type", metavar="TYPE")
    p.add_argument("--data", metavar="JSON", help="the event's data, as JSON")
    p.add_argument("--source", help="the event's source (default: the service name)")
    p.add_argument("--id", help="the event id (default: a new uuid4)")
    p.add_argument("--instance", metavar="ID", help="deliver to this instance's mailbox")
    p.add_argument("--json", action="store_true", help="JSON output")

    p = command(
        "serve",
        "run a worker until interrupted (a second SIGTERM/Ctrl-C stops it at once)",
        cmd_serve,
    )
    p.add_argument("--once", action="store_true", help="one pass of due work, then exit")
    p.add_argument("--poll", type=_seconds, default=None, help="seconds between polls")
    p.add_argument("--threads", type=_threads, default=1, help="instances advanced at once (1)")

    p = command("retry", "run a parked (or due) instance now (needs its code: --import)", cmd_retry)
    p.add_argument("instance_id", metavar="ID")

    p = command(
        "cancel",
        "cancel an instance (with --import its code runs here now; else a worker runs it)",
        cmd_cancel,
    )
    p.add_argument("instance_id", metavar="ID")
    p.add_argument("--reason", default=None, help="why: Cancelled.reason, kept on the instance")

    p = command("outbox", "list the outbox; retry or discard failed rows", cmd_outbox)
    p.add_argument("--status", action="append", help="only these (default: pending,failed)")
    p.add_argument("--all", action="store_true", help="every status (retry/discard: every row)")
    p.add_argument("--limit", type=_count, default=100, help="at most N rows (100)")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(event_id=None)
    actions = p.add_subparsers(dest="outbox_command", metavar="ACTION")
    actions_help = (
        ("retry", "put failed rows back to pending"),
        ("discard", "mark failed rows discarded (releasing the rows held behind them)"),
    )
    for name, help in actions_help:
        sub = actions.add_parser(name, help=help, description=help)
        _global_options(sub, suppress=True)
        sub.add_argument("event_id", metavar="EVENT_ID", nargs="?")
        sub.add_argument("--all", action="store_true", help="every failed row")

    p = command("ui", "serve the web viewer (eddic[web]) until Ctrl-C", cmd_ui)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    p.add_argument("--port", type=_port, default=8765, help="port to listen on (8765)")
    p.add_argument("--read-only", action="store_true", help="refuse every change")
    p.add_argument(
        "--token",
        default=None,
        help="needed by every request (also EDDIC_UI_TOKEN); required off loopback",
    )
    return parser


def _port(text: str) -> int:
    value = _count(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value


class _EscapingFormatter(logging.Formatter):
    """Log lines quote stored text (instance ids, errors): escaped like all the CLI prints."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _escape_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _escape_lines(super().formatStack(stack_info))


def _escape_lines(text: str) -> str:
    return "\n".join(escape(line) for line in text.split("\n"))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is logged (main() may run many times in
    one process, as in tests, each with its own stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _log_to_stderr() -> None:
    """Warnings and errors to stderr, escaped (once per process, like ``logging.basicConfig``)."""
    root = logging.getLogger()
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    if not root.handlers:
        root.setLevel(logging.WARNING)
    handler = _StderrHandler()
    handler.setFormatter(_EscapingFormatter("eddic: %(levelname)s: %(message)s"))
    root.addHandler(handler)


def _database_of(session: Session | None) -> str:
    try:
        return session.db_url if session is not None else "the database"
    except EddicError:
        return "the database"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    _log_to_stderr()
    session: Session | None = None
    try:
        session = Session(args)
        code: int = args.handler(session, args)
        return code
    except (EddicError, StorageError, ValueError) as exc:
        print(f"eddic: error: {escape(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except driver_errors() as exc:  # a file changed by hand past what the checks at open see
        where = _database_of(session)
        print(f"eddic: error: {escape(f'{where}: {type(exc).__name__}: {exc}')}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # `eddic list | head`: the reader left; not an error
        return EXIT_OK
