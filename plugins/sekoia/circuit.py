"""A circuit breaker for the Sekoia.io API: fail fast while it is down.

Without one, every event pays the full retry budget against a dead API (with the defaults,
4 attempts of 10 s plus backoff: about 42 s), and with 64 route workers that is about 1.5 events
a second: every route is delayed, not only the enriched ones. After ``threshold`` requests in a
row fail for lack of the API (a timeout, a connection error, 408 or 5xx), the circuit opens:
calls fail at once, without a request, for a cool-down. When it ends, one call goes through as
a probe while the others keep failing fast; if the probe gets an answer the circuit closes, else
it reopens for twice as long (up to ``cooldown_max``). Any answer from the API (even a 404) shows
it is up, and resets the count.

Opening and closing are logged once each (a failed probe only at debug level): events that fail
fast are not logged one by one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("notirouter.plugins.sekoia")


class Circuit:
    """Counts consecutive outage failures; open, it admits one probe per cool-down.

    ``threshold`` 0 disables it: every call is admitted. Not thread-safe (one event loop).
    """

    def __init__(
        self,
        enricher: str,
        *,
        threshold: int,
        cooldown: float,
        cooldown_max: float,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.enricher = enricher
        self.threshold = threshold
        self.cooldown_initial = cooldown
        self.cooldown_max = max(cooldown, cooldown_max)
        self._monotonic = monotonic
        self._failures = 0
        self._cooldown = cooldown
        self._until: float | None = None  # None: closed; else when the next probe may go
        self._opened_at = 0.0
        self._probing = False
        # ``(available, reason)`` on opening and closing: the core's operational events.
        self._on_change = on_change

    @property
    def is_open(self) -> bool:
        """Whether a call now would be refused (open, and cooling down or being probed)."""
        if self._until is None:
            return False
        return self._probing or self._monotonic() < self._until

    def status(self) -> dict[str, Any]:
        """Its state for ``notirouter status``: ``closed``, ``open`` (cooling down) or
        ``half-open`` (a probe may go, or is in flight), and the counts behind it."""
        now = self._monotonic()
        if self._until is None:
            state = "closed"
        elif self._probing or now >= self._until:
            state = "half-open"
        else:
            state = "open"
        return {
            "state": state,
            "consecutive_failures": self._failures,
            "threshold": self.threshold,
            "open_for_seconds": None if self._until is None else round(now - self._opened_at, 3),
            "next_probe_in_seconds": None
            if self._until is None
            else round(max(0.0, self._until - now), 3),
            "cooldown_seconds": self._cooldown,
        }

    def admit(self) -> bool:
        """Whether a request may go out now: ``True`` if it is the probe, ``False`` if normal.

        Raises :class:`CircuitOpen` when it may not.
        """
        if self._until is None:
            return False
        if self.is_open:
            raise CircuitOpen()
        self._probing = True
        return True

    def succeeded(self, probe: bool) -> None:
        """The API answered (whatever the status, but 408 and 5xx): it is up."""
        if probe:
            self._probing = False
        self._failures = 0
        if self._until is not None:
            down = self._monotonic() - self._opened_at
            self._until, self._probing, self._cooldown = None, False, self.cooldown_initial
            log.warning(
                "enricher %s: Sekoia.io API answers again; circuit closed after %.1fs",
                self.enricher,
                down,
            )
            if self._on_change is not None:
                self._on_change(True, f"the Sekoia.io API answers again after {down:.0f}s")

    def failed(self, probe: bool, reason: str) -> None:
        """A request failed for lack of the API (timeout, connection error, 408, 5xx)."""
        now = self._monotonic()
        if probe:
            self._probing = False
            if self._until is not None:
                self._cooldown = min(self._cooldown * 2.0, self.cooldown_max)
                self._until = now + self._cooldown
                log.debug(
                    "enricher %s: Sekoia.io API probe failed (%s); next one in %gs",
                    self.enricher,
                    reason,
                    self._cooldown,
                )
                return
        if self._until is not None or self.threshold <= 0:
            return  # already open (a request sent before it opened), or disabled
        self._failures += 1
        if self._failures >= self.threshold:
            self._opened_at, self._until = now, now + self._cooldown
            log.error(
                "enricher %s: Sekoia.io API unavailable (%d requests in a row failed, the last "
                "with %s); circuit open: notifications go out without details and without "
                "calling it, and one request probes it every %gs (doubling up to %gs)",
                self.enricher,
                self._failures,
                reason,
                self._cooldown,
                self.cooldown_max,
            )
            if self._on_change is not None:
                self._on_change(
                    False, f"{self._failures} requests in a row failed, the last with {reason}"
                )

    def abandoned(self, probe: bool) -> None:
        """A request ended without an outcome (cancelled): let the next call probe instead."""
        if probe:
            self._probing = False


class CircuitOpen(Exception):
    """Raised by :meth:`Circuit.admit` while the circuit is open."""
