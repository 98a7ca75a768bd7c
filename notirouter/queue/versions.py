"""Schema versions: the refusal every backend gives a store written by a newer notirouter."""

from __future__ import annotations

from notirouter.queue.sqlite.writer import QueueUnavailable


class SchemaTooNew(QueueUnavailable):
    """The store was written by a newer notirouter than this one."""


def too_new(found: int, latest: int, where: str) -> SchemaTooNew:
    """Refuse a store at ``found``: its meaning may have changed in ways this code gets wrong."""
    return SchemaTooNew(
        f"the queue at {where} has schema version {found}, newer than this notirouter "
        f"understands ({latest} at most): upgrade notirouter, or point it at another queue"
    )
