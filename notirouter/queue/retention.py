"""Retention: forget finished work in small batches, so the writer is never held for long.

The hourly housekeeping prunes events that finished more than ``queue.retention`` ago (and
their deliveries). One ``DELETE`` of a month of history would hold SQLite's single writer (and
the receiver's commits behind it) for seconds; each batch here removes at most
:data:`PRUNE_BATCH_ROWS` deliveries and as many events in one short transaction, and the next
batch waits :data:`PRUNE_PAUSE_SECONDS` so the receiver's and workers' commits go first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

PRUNE_BATCH_ROWS = 500
PRUNE_PAUSE_SECONDS = 0.05

# One batch: (deliveries removed, events removed), each at most the batch size.
PruneBatch = Callable[[], Awaitable[tuple[int, int]]]


async def prune_in_batches(
    batch: PruneBatch, *, rows: int = PRUNE_BATCH_ROWS, pause: float = PRUNE_PAUSE_SECONDS
) -> int:
    """Run ``batch`` until it removes less than ``rows`` of each kind; the events removed.

    A batch deletes done deliveries first, then the events left with no delivery at all, so
    an event with a delivery still pending or dead is never removed.
    """
    events_removed = 0
    while True:
        deliveries, events = await batch()
        events_removed += events
        if deliveries < rows and events < rows:
            return events_removed
        await asyncio.sleep(pause)
