"""A route's ``throttle:`` compiled: at most ``max`` messages per key per ``per`` seconds.

Per event it gives the :class:`~notirouter.queue.gates.ThrottleCheck` the queue counts in the
key's window; beyond ``max`` the message is not dropped but held (a group item of kind
:data:`~notirouter.queue.gates.THROTTLE_KIND`) and sent in one digest when the window ends, by
the group flusher (README "Storm control").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from notirouter.api.message import Message
from notirouter.api.templating import Templates
from notirouter.queue.gates import THROTTLE_KIND, ThrottleCheck
from notirouter.queue.records import NewGroupItem
from notirouter.routing.notify_on import Renderer, compile_key, render_key

# A flushed window's group is due again at once, found empty and forgotten.
AFTER_FLUSH = 0.0
DIGEST_ITEMS = 50


@dataclass(frozen=True)
class Throttle:
    """A compiled ``throttle:``."""

    key_source: str
    key: Renderer
    max: int
    per: float

    @classmethod
    def compile(cls, templates: Templates, key: str, *, max: int, per: float) -> Throttle:
        """Compile the key (:class:`~notirouter.routing.notify_on.GateCompileError`)."""
        return cls(key, compile_key(templates, key), max, per)

    def check(self, variables: Mapping[str, Any]) -> ThrottleCheck | None:
        """What the queue counts for this event (``None``: no key, so it is not throttled)."""
        key = render_key(self.key, variables)
        return None if key is None else ThrottleCheck(key, self.max, self.per)

    def fold(
        self,
        route: str,
        sinks: Sequence[str],
        message: Message,
        message_json: str,
        group_key: str,
        wait: float,
    ) -> NewGroupItem:
        """The item held in the window's digest, sent ``wait`` seconds from now."""
        return NewGroupItem(
            kind=THROTTLE_KIND,
            route=route,
            group_key=group_key,
            sinks=tuple(sinks),
            wait=wait,
            interval=AFTER_FLUSH,
            max_items=DIGEST_ITEMS,
            message_json=message_json,
            severity=message.severity.rank,
            link=message.link,
        )
