"""The least Python a runtime of eddic's design can run per step: a lower bound, not a product.

``sqlfloor.py`` replays eddic's statements with no Python work at all between them. This module
adds back only what no runtime of the design can skip, and nothing else: the workflow is the same
generator (``bench_order``), its input, each activity's arguments and each result go through the
same pydantic adapters (validated, dumped to JSON text, and the result read back from its text so
the workflow sees what a replay would), times are formatted, and the very rows and statements
eddic writes are written, one ``BEGIN IMMEDIATE`` transaction per start and per step, the lease
checked by the same read. There is no kernel (no history matching, no All/First, no saga stack),
no retries or attempts, no lease renewal, no locks between threads or processes, no group
commit, no errors handled: it runs one happy path, for one caller.

Measured beside raw commits in ``throughput.py``'s ``1x1`` rounds, it tells whether the issue's
inline target is within reach of any implementation of the design in CPython on this disk.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator
from typing import Any

from benchlib import connect_like_eddic
from pydantic import TypeAdapter
from pydantic_core import to_json

from eddic.clock import to_text, utcnow
from eddic.kernel import CallActivity
from eddic.storage.sqlite.schema import POS_BITS

_SCHEDULED = (
    "INSERT INTO history (id, instance_id, pos, seq, record, kind, name, args, at) "
    "VALUES (?,?,?,?,'scheduled',?,?,?,?)"
)
_RESOLVED = (
    "INSERT INTO history (id, instance_id, pos, seq, record, at, value) "
    "VALUES (?,?,?,?,'resolved',?,?)"
)
_FENCE = "SELECT 1 FROM instances WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?"
_INSERT_INSTANCE = (
    "INSERT INTO instances (instance_id, workflow_name, status, input_data, created_at, "
    "updated_at, started_at, service_name, lock_timeout_seconds, lock_owner, lock_epoch, "
    "lock_expires_at, wake_at, retry_after) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, NULL, NULL)"
)
_COMPLETE = (
    "UPDATE instances SET status = ?, output_data = ?, error = NULL, wake_at = NULL, "
    "retry_after = NULL, updated_at = ?, lock_owner = NULL, lock_expires_at = NULL "
    "WHERE instance_id = ? AND lock_owner = ? AND lock_epoch = ?"
)


class MinimalRuntime:
    """Starts ``workflow`` inline, as ``App.start`` does, with the least work per step."""

    owner = "minimal"

    def __init__(
        self,
        path: str,
        synchronous: str,
        workflow: Callable[..., Generator[Any, Any, Any]],
        input_type: Any,
        result_type: Any,
    ) -> None:
        self.conn = connect_like_eddic(path, synchronous)
        self.cur = self.conn.cursor()
        self.workflow = workflow
        self.input_adapter: TypeAdapter[Any] = TypeAdapter(input_type)
        self.result_adapter: TypeAdapter[Any] = TypeAdapter(result_type)
        self.key = self.cur.execute("SELECT COALESCE(MAX(ikey), 0) FROM instances").fetchone()[0]

    def start(self, data: Any) -> str:
        execute = self.cur.execute
        value = self.input_adapter.validate_python(data)
        iid = str(uuid.uuid4())
        gen = self.workflow(None, value)
        command = next(gen)
        now = to_text(utcnow())
        execute("BEGIN IMMEDIATE")
        execute(
            _INSERT_INSTANCE,
            [
                iid,
                "bench_order",
                "running",
                self.input_adapter.dump_json(value).decode(),
                now,
                now,
                now,
                "eddic",
                self.owner,
                1,
                now,  # the lease's expiry: a time like any other here
            ],
        )
        key = self.key = self.key + 1
        base, pos, seq = key << POS_BITS, 1, 1
        execute(_SCHEDULED, (base | pos, iid, pos, seq, "activity", *_call(command), now))
        execute("COMMIT")
        while True:
            act, call = _bound(command)
            result = act.func(**call)
            adapter = act.result_adapter
            text = adapter.dump_json(adapter.validate_python(result)).decode()
            sent = adapter.validate_json(text)
            try:
                command = gen.send(sent)
            except StopIteration as done:
                out = self.result_adapter.dump_json(done.value).decode()
                now = to_text(utcnow())
                execute("BEGIN IMMEDIATE")
                execute(_COMPLETE, ["completed", out, now, iid, self.owner, 1])
                pos += 1
                execute(_RESOLVED, (base | pos, iid, pos, seq, now, text))
                execute("COMMIT")
                return iid
            now = to_text(utcnow())
            execute("BEGIN IMMEDIATE")
            execute(_FENCE, (iid, self.owner, 1)).fetchall()
            pos += 1
            execute(_RESOLVED, (base | pos, iid, pos, seq, now, text))
            pos, seq = pos + 1, seq + 1
            execute(_SCHEDULED, (base | pos, iid, pos, seq, "activity", *_call(command), now))
            execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


def _bound(command: CallActivity) -> tuple[Any, dict[str, Any]]:
    """The activity and its arguments validated by name (positional arguments only here)."""
    act = command.activity
    adapters = act.param_adapters
    pairs = zip(act._names, command.args, strict=True)
    return act, {n: adapters[n].validate_python(v) for n, v in pairs}


def _call(command: CallActivity) -> tuple[str, str]:
    """The scheduled record's name and JSON arguments, as eddic records them."""
    act = command.activity
    adapters = act.param_adapters
    pairs = zip(act._names, command.args, strict=True)
    args = {n: adapters[n].dump_python(v, mode="json") for n, v in pairs}
    return act.name, to_json(args).decode()
