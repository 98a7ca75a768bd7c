"""Per-sink rate limiting: a token bucket the dispatcher draws from before each claim.

A claim takes as many tokens as it has free slots, as far as the bucket allows: the tokens
there now, plus those the refill brings within :data:`TOKEN_HORIZON`. Each token comes with
the delay after which it may be spent (``0`` for one in the bucket, else the time the refill
brings it), and the dispatcher starts each job at its token's time, so sends keep to the rate
and the burst exactly while a sink limited to 100,000/s claims many jobs per queue round trip.
A slow limit (``rate * horizon < 1``: Slack, Teams, Mattermost by default) still claims one
job per token as it comes, so no claimed job waits more than the horizon under its lease.
"""

from __future__ import annotations

import math
import time

TOKEN_HORIZON = 0.1
"""Seconds ahead a claim may book tokens that are still to come (far below any lease)."""


def token_delays(
    level: float, rate: float, up_to: int, horizon: float = TOKEN_HORIZON
) -> list[float]:
    """When each token a claim can take is ready, from a bucket holding ``level`` tokens.

    Token ``i`` (from 0) is ready once the bucket reaches ``i + 1``: at once for those in it,
    ``(i + 1 - level) / rate`` seconds from now for the rest. Only tokens ready within
    ``horizon`` are taken, at most ``up_to``; none when not even one is in the bucket.
    """
    if level < 1 or up_to < 1:
        return []
    count = min(up_to, math.floor(level + rate * horizon))
    return [max(0.0, (i + 1 - level) / rate) for i in range(count)]


class TokenBucket:
    """Allows ``rate`` acquisitions per second on average, ``burst`` back to back.

    The level may go below zero: tokens booked for sends a few milliseconds ahead
    (:meth:`reserve`), which the refill pays back before anything else can be taken.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def reserve(self, up_to: int, horizon: float = TOKEN_HORIZON) -> list[float]:
        """Take up to ``up_to`` tokens; return each one's delay (``[]``: none yet)."""
        self._refill()
        delays = token_delays(self._tokens, self.rate, up_to, horizon)
        self._tokens -= len(delays)
        return delays

    def wait_time(self) -> float:
        """Seconds until a token is in the bucket (``0``: one is there now)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)

    def give_back(self, count: int = 1) -> None:
        """Return ``count`` tokens that were taken but not used."""
        self._tokens = min(self.burst, self._tokens + count)
