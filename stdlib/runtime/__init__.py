"""The engine: ``App`` (``app``), the worker that drives instances step by step (``worker``,
``instance``, ``executor``, ``leases``, ``events``), what it does when a step fails (``faults``),
and the outbox relay (``outbox``, ``http_sink``)."""

from __future__ import annotations

from .app import App

__all__ = ["App"]
