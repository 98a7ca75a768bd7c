"""What happens to a matched route's message now: silenced, held by the route's window, or
sent (at once or into its group). Shared by the routing workers and the dry run, so both
say the same (README "Storm control")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from notirouter.routing.quiet_hours import WindowDecision
from notirouter.routing.silences import Silence
from notirouter.routing.table import Route


@dataclass(frozen=True)
class Disposition:
    """The silence that applies, or else the window's decision (``None``: none applies)."""

    silence: Silence | None = None
    window: WindowDecision | None = None

    @property
    def held(self) -> bool:
        """Held by the route's window until it is active again."""
        return self.window is not None and self.window.held

    def record(self) -> dict[str, Any]:
        """The ``silence`` and ``window`` keys of the route's routing record entry."""
        entry: dict[str, Any] = {}
        if self.silence is not None:
            entry["silence"] = self.silence.record()
        if self.window is not None:
            entry["window"] = self.window.record()
        return entry


def dispose(
    route: Route, variables: Mapping[str, Any], silence: Silence | None, now: float
) -> Disposition:
    """A silence wins (nothing is sent or held); else the route's window decides."""
    if silence is not None:
        return Disposition(silence=silence)
    if route.window is not None:
        return Disposition(window=route.window.decide(variables, now))
    return Disposition()
