"""What one yield waits on: a tree of leaves under All/First nodes, and the public views of it.

A leaf is one command with its seq; a yield of a single command (the common case) shares the
node ``SOLO`` and builds no tree. ``Pending`` and ``Trace`` are what callers of the interpreter
see of the leaves: a recorded command still waiting, and an observer's event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .commands import Command
from .history import Record, Scheduled

__all__ = ["SOLO", "Leaf", "Node", "Pending", "Trace"]


class Node:
    """One node of the tree a single yield waits on: a leaf, or an All/First over children."""

    __slots__ = ("done", "index", "mode", "parent", "remaining", "results", "value")

    # Set on All/First nodes only (a leaf node is built once per command: keep it cheap).
    remaining: int  # children not settled yet (All)
    results: list[Any]  # the children's values, in argument order (All)
    value: Any  # the value of a node that settled as it was built

    def __init__(self, mode: str, parent: Node | None, index: int) -> None:
        self.mode = mode  # "leaf", "all" or "first"
        self.parent = parent
        self.index = index
        self.done = False

    @classmethod
    def combinator(cls, mode: str, parent: Node | None, index: int, size: int) -> Node:
        node = cls(mode, parent, index)
        node.remaining = size
        node.results = [None] * size
        node.value = None
        return node


class Leaf:
    __slots__ = ("command", "deadline", "kind", "name", "node", "record", "seq")

    def __init__(
        self,
        seq: int,
        command: Command,
        kind: str,
        name: str,
        deadline: datetime | None,
        node: Node | None,
    ) -> None:
        self.seq = seq
        self.command = command
        self.kind = kind
        self.name = name
        self.deadline = deadline
        self.node = node  # None once abandoned, or for compensations; SOLO: a yield of its own
        self.record: Scheduled | None = None


#: The node of a leaf yielded on its own (the common case): no tree to build or walk.
SOLO = Node("leaf", None, 0)


@dataclass(frozen=True, slots=True)
class Pending:
    """A recorded command still waiting for the caller to resolve it."""

    seq: int
    command: Command
    record: Scheduled

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def deadline(self) -> datetime | None:
        return self.record.deadline


@dataclass(frozen=True, slots=True)
class Trace:
    """What an observer sees: a recorded command matched, or an outcome delivered.

    ``event`` is ``"matched"`` (``record`` is the ``Scheduled`` the code's ``command`` matched) or
    ``"resolved"`` (``record`` is the ``Resolved``; ``error`` is what a failure throws into the
    workflow; ``abandoned`` when the workflow no longer waits on that command).
    """

    event: str
    seq: int
    command: Command
    record: Record
    error: BaseException | None = None
    abandoned: bool = False
