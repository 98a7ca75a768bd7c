"""Receiving endpoints, looked up by token in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from notirouter.config.models import HookConfig


@dataclass(frozen=True)
class Hook:
    """A configured endpoint: its name (safe to log) and source type."""

    name: str
    source: str
    token: bytes


class HookTable:
    """Finds the hook for a token without revealing, through timing, which tokens exist."""

    def __init__(self, hooks: Iterable[HookConfig]) -> None:
        self.hooks = tuple(
            Hook(h.name, h.source, h.token.get_secret_value().encode()) for h in hooks
        )

    def find(self, token: str) -> Hook | None:
        """The hook whose token is ``token``; every token is compared, in constant time."""
        candidate = token.encode()
        found = None
        for hook in self.hooks:
            if hmac.compare_digest(hook.token, candidate):
                found = hook
        return found
