"""Retry policies for activities and compensations."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from . import validate


@dataclass(frozen=True)
class RetryPolicy:
    """How often an activity is tried, and how long to wait in between.

    ``max_attempts`` counts every attempt, the first included. The wait before attempt ``n + 1``
    is ``initial_interval * backoff ** (n - 1)`` seconds, capped at ``max_interval``. Exceptions
    that are instances of a class in ``non_retryable`` fail the activity at once.

    Every value is checked here, at construction: intervals are finite seconds ``>= 0`` (at
    most ``validate.MAX_SECONDS``), ``backoff`` a finite number ``>= 1``, ``max_attempts`` an
    int ``>= 1``, ``non_retryable`` exception classes (one class alone is taken too).
    """

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 100.0
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        validate.count(self.max_attempts, "max_attempts", minimum=1)
        initial = validate.seconds(self.initial_interval, "initial_interval")
        cap = validate.seconds(self.max_interval, "max_interval")
        backoff = self.backoff
        if isinstance(backoff, bool) or not isinstance(backoff, (int, float)):
            raise TypeError(f"backoff must be a number, got {backoff!r}")
        if not math.isfinite(backoff) or backoff < 1:
            raise ValueError(f"backoff must be a finite number >= 1, got {backoff!r}")
        object.__setattr__(self, "initial_interval", initial)
        object.__setattr__(self, "max_interval", cap)
        object.__setattr__(self, "backoff", float(backoff))
        object.__setattr__(self, "non_retryable", _exception_classes(self.non_retryable))

    def interval(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt.

        Never overflows: the cap is found first (by logarithms), so a policy of thousands of
        attempts, or a huge ``backoff``, waits ``max_interval`` where ``backoff ** n`` would be
        too large for a float.
        """
        initial, cap, backoff = self.initial_interval, self.max_interval, self.backoff
        steps = max(failures - 1, 0)
        if initial == 0 or initial >= cap:
            return min(initial, cap)
        if backoff == 1 or steps == 0:
            return initial
        # initial * backoff ** steps >= cap  <=>  steps * log(backoff) >= log(cap / initial)
        if steps * math.log(backoff) >= math.log(cap) - math.log(initial):
            return cap
        try:
            return min(cap, initial * backoff**steps)
        except OverflowError:  # rounding at the edge of the cap
            return cap

    def retries(self, exc: BaseException, failures: int) -> bool:
        """Whether to try again after ``failures`` failed attempts, the last raising ``exc``."""
        return failures < self.max_attempts and not isinstance(exc, self.non_retryable)


def _exception_classes(value: Any) -> tuple[type[BaseException], ...]:
    items = (value,) if isinstance(value, type) else value
    try:
        classes = tuple(items)
    except TypeError:
        raise TypeError(f"non_retryable must hold exception classes, got {value!r}") from None
    for item in classes:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"non_retryable must hold exception classes, got {item!r}")
    return classes


#: A bare ``@activity`` makes one attempt.
NO_RETRY = RetryPolicy(max_attempts=1)
#: Compensations are retried by default: a saga that cannot roll back is the worst outcome.
COMPENSATION_RETRY = RetryPolicy(max_attempts=5)
