"""``eddic ui``: the web viewer (:mod:`eddic.web`) served by uvicorn until Ctrl-C."""

from __future__ import annotations

import argparse
import os

from ..errors import CliError
from ..storage import shown_url
from .commands import EXIT_OK, Session, note

__all__ = ["cmd_ui"]


def cmd_ui(session: Session, args: argparse.Namespace) -> int:
    try:  # here, not at the top: the CLI works without the web extra
        import uvicorn

        from ..web import create_app
        from ..web.security import is_loopback
    except ImportError as exc:
        need = "pip install 'eddic[web]'"
        raise CliError(f"the viewer needs the web extra: {need} ({exc})") from None
    token = args.token or os.environ.get("EDDIC_UI_TOKEN") or None
    if not is_loopback(args.host) and token is None:
        raise CliError(
            f"--host {args.host} is not loopback: the viewer would answer anyone who reaches "
            "it, so it needs a token (--token TOKEN, or EDDIC_UI_TOKEN)"
        )
    url = session.db_url
    session.reader().close()  # a missing or foreign database: the read-only commands' errors
    app = session.app if session.app is not None and session.app.storage.db_url == url else None
    # Without a token the viewer answers loopback Host names only (see eddic.web.security).
    viewer = create_app(app if app is not None else url, read_only=args.read_only, token=token)
    where = f"[{args.host}]" if ":" in args.host else args.host
    mode = ", read-only" if args.read_only else ""
    print(f"eddic viewer of {shown_url(url)} on http://{where}:{args.port}/{mode}", flush=True)
    if token is not None:
        note("log in at /login with the token (scripts: 'Authorization: Bearer TOKEN')")
    uvicorn.run(viewer, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK
