"""The process's file-descriptor limit: raised to the hard limit at start, and what it allows.

Every connection costs a descriptor. At the common default soft limit of 1,024, a few hundred
silent sockets were enough for ``accept()`` to fail with ``EMFILE`` and refuse every webhook;
the hard limit (``LimitNOFILE`` in the systemd unit) is usually far higher and free to take.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

log = logging.getLogger("notirouter")

# Descriptors kept for everything that is not an incoming connection: the SQLite files, the
# outgoing connection pools of sinks and enrichers, logs, the event loop's own.
RESERVED_DESCRIPTORS = 320
# A hard limit of "unlimited" cannot be a soft limit on Linux (it is capped by fs.nr_open).
UNLIMITED_TARGET = 1_048_576


@dataclass(frozen=True)
class DescriptorLimit:
    """The soft limit before and after :func:`raise_descriptor_limit`, and the hard one."""

    was: int
    soft: int
    hard: int


def raise_descriptor_limit() -> DescriptorLimit:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (as far as the kernel lets us)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the descriptor limit from %d to %d: %s", soft, target, exc)
    now, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return DescriptorLimit(was=soft, soft=now, hard=hard)


def connection_cap(max_connections: int, limit: DescriptorLimit) -> int:
    """``max_connections``, lowered if the descriptor limit cannot hold that many (logged)."""
    room = max(1, limit.soft - RESERVED_DESCRIPTORS)
    if max_connections <= room:
        return max_connections
    log.warning(
        "server.max_connections is %d but the descriptor limit (%d) leaves room for %d: "
        "connections beyond %d get 503; raise LimitNOFILE (or ulimit -n) to allow more",
        max_connections,
        limit.soft,
        room,
        room,
    )
    return room
