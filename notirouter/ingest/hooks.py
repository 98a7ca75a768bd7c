"""Receiving endpoints, looked up by token in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from notirouter.config.models import HookConfig
from notirouter.ingest.allow_list import Network


@dataclass(frozen=True)
class Hook:
    """A configured endpoint: its name (safe to log), source type and allowed senders."""

    name: str
    source: str
    token: bytes
    allow: tuple[Network, ...] | None = None
    """Networks whose clients may post here; None: any client."""


class HookTable:
    """Finds the hook for a token without revealing, through timing, which tokens exist."""

    def __init__(self, hooks: Iterable[HookConfig]) -> None:
        self.hooks = tuple(
            Hook(
                h.name,
                h.source,
                h.token.get_secret_value().encode(),
                None if h.allow is None else tuple(h.allow),
            )
            for h in hooks
        )

    def find(self, token: str) -> Hook | None:
        """The hook whose token is ``token``; every token is compared, in constant time."""
        candidate = token.encode()
        found = None
        for hook in self.hooks:
            if hmac.compare_digest(hook.token, candidate):
                found = hook
        return found
