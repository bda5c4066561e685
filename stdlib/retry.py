"""Retry policies for activities and compensations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often an activity is tried, and how long to wait in between.

    ``max_attempts`` counts every attempt, the first included. The wait before attempt ``n + 1``
    is ``initial_interval * backoff ** (n - 1)`` seconds, capped at ``max_interval``. Exceptions
    that are instances of a class in ``non_retryable`` fail the activity at once.
    """

    max_attempts: int = 3
    initial_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 100.0
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.initial_interval < 0 or self.max_interval < 0:
            raise ValueError("retry intervals must be >= 0 seconds")
        if self.backoff < 1:
            raise ValueError(f"backoff must be >= 1, got {self.backoff!r}")
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def interval(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt."""
        return float(min(self.max_interval, self.initial_interval * self.backoff ** (failures - 1)))

    def retries(self, exc: BaseException, failures: int) -> bool:
        """Whether to try again after ``failures`` failed attempts, the last raising ``exc``."""
        return failures < self.max_attempts and not isinstance(exc, self.non_retryable)


#: A bare ``@activity`` makes one attempt.
NO_RETRY = RetryPolicy(max_attempts=1)
#: Compensations are retried by default: a saga that cannot roll back is the worst outcome.
COMPENSATION_RETRY = RetryPolicy(max_attempts=5)
