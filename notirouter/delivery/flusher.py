"""The group flusher: sends each due group's digest (README "Storm control").

Timers live in the queue, not in this process: the loop sleeps until the earliest group is
due (or a commit creates a new group), then lets the queue flush due groups, each emptied into
one delivery per sink in one transaction. A restarted process resumes the same timers; on
PostgreSQL several processes flush side by side and each group once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from notirouter.delivery.digests import flushed_message
from notirouter.queue.protocol import GROUPS_WAKE, GroupStore, QueueUnavailable

log = logging.getLogger("notirouter.flusher")
BATCH = 64
# Other processes notify new groups; this bounds the sleep should one notice be lost.
MAX_SLEEP = 30.0
RETRY_AFTER_ERROR = 1.0
# A due group another process is flushing right now: look again shortly, not in a tight loop.
TAKEN_RETRY = 0.05


class GroupFlusher:
    """One loop per process that flushes due groups."""

    def __init__(self, queue: GroupStore) -> None:
        self.queue = queue
        self.wakeup = queue.wakeup(GROUPS_WAKE)

    async def run(self) -> None:
        """Flush due groups until cancelled."""
        while True:
            self.wakeup.clear()
            try:
                flushed = await self.queue.flush_groups(BATCH, flushed_message)
                if flushed >= BATCH:
                    continue  # more may be due at once
                due = await self.queue.next_group_due()
                if not flushed and due is not None and due <= time.time():
                    due = time.time() + TAKEN_RETRY
            except QueueUnavailable as exc:
                log.warning("groups could not be flushed: %s", exc)
                due = time.time() + RETRY_AFTER_ERROR
            except Exception:
                log.exception("groups could not be flushed")
                due = time.time() + RETRY_AFTER_ERROR
            sleep = MAX_SLEEP if due is None else min(MAX_SLEEP, max(0.0, due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), sleep)
