"""A service module as a user writes one: workflows and an ``App`` (``--app dbg_service:app``).

The database comes from ``DBG_DB_URL`` so each test can point it at its own file.
"""

from __future__ import annotations

import os

import dbg_workflows  # noqa: F401 - registers dbg_order

from eddic import App

app = App(db_url=os.environ.get("DBG_DB_URL", "sqlite:///dbg.db"), service_name="dbg-service")
