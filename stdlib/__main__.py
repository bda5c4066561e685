"""``python -m eddic``: the same as the ``eddic`` command."""

from .cli import main

raise SystemExit(main())
