"""Retrying upstream calls: exponential backoff with full jitter, bounded in time.

Why full jitter (delay uniform in [0, min(cap, base * 2**n)]): many gateways retrying
against one struggling store spread out instead of hitting it again in lock-step, and
the expected wait still grows exponentially. Why a deadline as well as an attempt count:
the client of the facade is waiting on the other end; after `deadline` seconds the
store is treated as unavailable and the client gets a retryable error instead.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["RETRYABLE_CODES", "RETRYABLE_STATUSES", "Backoff", "RetryPolicy", "is_retryable"]

# Answers that say "try again": throttling, server trouble, and S3's own timeouts.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset(
    {
        "SlowDown",  # S3/RGW throttling (503)
        "ServiceUnavailable",
        "InternalError",  # also sent inside a 200 by CompleteMultipartUpload / CopyObject
        "RequestTimeout",  # 400: the store gave up reading our body
        "OperationAborted",  # 409: a conflicting operation on the same key is in progress
        "ThrottlingException",
    }
)


def is_retryable(status: int, code: str | None) -> bool:
    return status in RETRYABLE_STATUSES or (code is not None and code in RETRYABLE_CODES)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 10
    base_delay: float = 0.05  # seconds before the first retry, at most (jitter)
    max_delay: float = 2.0  # cap of one backoff
    deadline: float = 30.0  # seconds from the first attempt after which we give up

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"invalid retry policy {self}")
        if self.deadline <= 0:
            raise ValueError("retry deadline must be positive")

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The wait before retry number `retry` (1 = the first retry)."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling * rand()

    def start(self) -> Backoff:
        return Backoff(self)


@dataclass
class Backoff:
    """One operation's retry budget: call `next_delay()` after each failure."""

    policy: RetryPolicy
    clock: Callable[[], float] = time.monotonic
    attempts: int = 1
    started: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def next_delay(self) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent."""
        if self.attempts >= self.policy.max_attempts:
            return None
        delay = self.policy.delay(self.attempts)
        if self.elapsed + delay >= self.policy.deadline:
            return None
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Progress was made (a stream delivered bytes): the budget starts over."""
        self.attempts = 1
        self.started = self.clock()
