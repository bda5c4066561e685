"""``eddic``: inspect, replay, check and operate eddic databases from the command line.

The database comes from ``--db`` (a ``sqlite:///`` URL or a plain path), else ``EDDIC_DB``, else
the ``App`` named by ``--app module:attribute``. Workflow code comes from ``--app`` and
``--import MODULE`` (repeatable); ``list``, ``show`` and ``outbox`` need none and open the file
read-only. Exit status: 0 success, 1 a replay or check found a divergence (or could not verify
an instance), 2 an error (bad usage, missing database, unknown instance, code that does not
import). The subcommands live in :mod:`eddic.cli_commands`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from .cli_commands import (
    EXIT_ERROR,
    EXIT_OK,
    Session,
    cmd_check,
    cmd_list,
    cmd_outbox,
    cmd_replay,
    cmd_send_event,
    cmd_serve,
    cmd_show,
)
from .dbfile import StorageError
from .kernel import EddicError

__all__ = ["build_parser", "main"]


# -- the parser ---------------------------------------------------------------------------------


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
        epilog="Exit status: 0 ok, 1 divergence found, 2 error.",
    )
    _global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _global_options(sub, suppress=True)
        sub.set_defaults(handler=handler)
        return sub

    p = command("list", "list instances (newest last)", cmd_list)
    p.add_argument("--status", action="append", help="only these statuses (repeatable, a,b)")
    p.add_argument("--workflow", help="only instances of this workflow")
    p.add_argument("--limit", type=int, default=100, help="at most N rows (0: all; 100)")
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

    p = command("serve", "run a worker until interrupted", cmd_serve)
    p.add_argument("--once", action="store_true", help="one pass of due work, then exit")
    p.add_argument("--poll", type=float, default=None, help="seconds between polls")
    p.add_argument("--threads", type=int, default=1, help="instances advanced at once (1)")

    p = command("outbox", "list the outbox; retry or discard failed rows", cmd_outbox)
    p.add_argument("--status", action="append", help="only these (default: pending,failed)")
    p.add_argument("--all", action="store_true", help="every status (retry/discard: every row)")
    p.add_argument("--limit", type=int, default=100, help="at most N rows (100)")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    logging.basicConfig(level=logging.WARNING, format="eddic: %(levelname)s: %(message)s")
    try:
        session = Session(args)
        code: int = args.handler(session, args)
        return code
    except (EddicError, StorageError, ValueError) as exc:
        print(f"eddic: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # `eddic list | head`: the reader left; not an error
        return EXIT_OK
