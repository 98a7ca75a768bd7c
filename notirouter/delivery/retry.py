"""When to try a failed attempt again, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After``, bounded by a maximum age."""

    initial: float = 1.0
    maximum: float = 600.0
    max_age: float = 86_400.0

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones.

        "Equal jitter": half the exponential step is fixed, half random, so a storm of
        failures spreads out without any retry coming absurdly early. A server's
        ``Retry-After`` is a floor, never shortened.
        """
        # The exponent is capped: 2.0 ** 1024 overflows, and 2 ** 60 steps is past any maximum.
        step = min(self.maximum, self.initial * 2.0 ** min(max(0, attempts - 1), 60))
        delay = step / 2 + random.random() * step / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def gives_up(self, created_at: float, now: float, delay: float) -> bool:
        """Whether the next attempt would fall past the maximum age of the job."""
        return now + delay - created_at > self.max_age
