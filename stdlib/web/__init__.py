"""The web viewer and CloudEvents ingress (``eddic[web]``): ``eddic ui`` serves it, and
:func:`create_app` returns it as an ASGI application to mount in a Starlette or FastAPI service.

Pages are rendered on the server; reading needs no script and each action is a plain form. It
reads through the storage interface (either backend) and computes what an instance waits on now,
and what a failure would compensate, with the kernel, from the stored history. See docs/viewer.md.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
