"""The claim loop shared by routing workers and sink dispatchers.

Whenever slots are free, claim that many due items under a lease and handle each in its own
task; with nothing due, sleep until a commit wakes us or the next item falls due. Idle workers
cost nothing, and new work is picked up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from notirouter.queue.protocol import QueueUnavailable
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.claiming")

# Even with nothing due, look again now and then: another process (``notirouter dead replay``)
# may have added work this one was not woken for.
IDLE_RECHECK_SECONDS = 5.0
QUEUE_ERROR_PAUSE = 1.0

ItemT = TypeVar("ItemT")


class Slot:
    """One unit of a loop's concurrency, released once (early by the handler, or at the end)."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._held = True

    def release(self) -> None:
        """Free the slot for the next claim; later calls do nothing."""
        if self._held:
            self._held = False
            self._semaphore.release()


class ClaimLoop(ABC, Generic[ItemT]):
    """Claims up to ``concurrency`` items at a time and handles them concurrently.

    While an item is handled its lease is renewed every third of ``lease``: a claim's lease
    expires only when its worker is gone (killed, hung, cut off from the queue), never because
    the work took long in a live one, so a busy machine or a slow service sends nothing twice.
    """

    label: str = "worker"
    lease: float | None = None
    """The lease each claim takes, in seconds (``None``: nothing to renew)."""

    def __init__(self, wakeup: asyncio.Event, concurrency: int) -> None:
        self.wakeup = wakeup
        self.concurrency = concurrency
        self.slots = asyncio.Semaphore(concurrency)
        self.tasks: set[asyncio.Task[None]] = set()
        self.queue_errors = ThrottledLog(log)  # a queue that is down fails every claim alike
        self.stopping = False
        self._claiming = False
        self.runner: asyncio.Task[None] | None = None  # the task running :meth:`run`

    @abstractmethod
    async def claim(self, limit: int) -> list[ItemT]:
        """Claim up to ``limit`` due items under a lease."""

    @abstractmethod
    async def next_due(self) -> float | None:
        """When the next item falls due (``None``: nothing pending)."""

    @abstractmethod
    async def handle(self, item: ItemT, slot: Slot) -> None:
        """Process one claimed item (exceptions are the subclass's to handle).

        Call ``slot.release()`` once the slow part is done (the network call) and only
        bookkeeping is left: the next item can start while this one is being recorded.
        """

    async def renew(self, item: ItemT) -> bool:
        """Push the lease of ``item``, still being handled; ``False``: it is no longer ours."""
        return False

    async def before_claim(self, free: int) -> int:
        """Wait here before claiming, and say how many of the ``free`` slots to fill.

        A sink paused by ``Retry-After`` waits here; a rate-limited sink waits for its next
        token and claims one job, so no claimed job ever waits for the limit under its lease.
        """
        return free

    def stop(self, runner: asyncio.Task[None]) -> None:
        """Claim no more (``runner`` is the task of :meth:`run`); items in progress go on.

        A claim already sent to the queue is let finish and its items are handled: cancelled
        there, they would wait out their lease unattended.
        """
        self.stopping = True
        if not self._claiming:
            runner.cancel()

    async def run(self) -> None:
        """Claim and handle until cancelled or stopped."""
        self.runner = asyncio.current_task()
        while not self.stopping:
            await self.slots.acquire()
            free = 1
            while free < self.concurrency and not self.slots.locked():
                await self.slots.acquire()
                free += 1
            try:
                # After the slots: an attempt that just freed one may have asked for a pause.
                wanted = await self.before_claim(free)
                self.wakeup.clear()
                self._claiming = True
                try:
                    batch = await self.claim(wanted)
                finally:
                    self._claiming = False
            except QueueUnavailable as exc:
                batch = []
                self.queue_errors.log(
                    logging.ERROR, "claim", "%s: cannot claim work (%s)", self.label, exc
                )
                await asyncio.sleep(QUEUE_ERROR_PAUSE)
            except Exception:
                # A bug or an unexpected database error must not end the loop for good.
                batch = []
                log.exception("%s: claiming work failed", self.label)
                await asyncio.sleep(QUEUE_ERROR_PAUSE)
            for _ in range(free - len(batch)):
                self.slots.release()
            for item in batch:
                task = asyncio.create_task(self._handle(item))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if not batch and not self.stopping:
                await self._sleep_until_due()

    async def _handle(self, item: ItemT) -> None:
        slot = Slot(self.slots)
        keeper = asyncio.create_task(self._keep_lease(item)) if self.lease else None
        try:
            await self.handle(item, slot)
        finally:
            slot.release()
            if keeper is not None:
                keeper.cancel()
                await asyncio.gather(keeper, return_exceptions=True)

    async def _keep_lease(self, item: ItemT) -> None:
        """Renew ``item``'s lease until cancelled (the handler is done) or it is lost."""
        assert self.lease is not None
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await self.renew(item):
                    return  # recorded meanwhile, or taken over: nothing more to keep
            except QueueUnavailable as exc:
                # The next renewal may get through; if none does, the lease expires and the
                # item is handled again (at least once).
                self.queue_errors.log(
                    logging.WARNING, "renew", "%s: cannot renew a lease (%s)", self.label, exc
                )
            except Exception:
                log.exception("%s: renewing a lease failed", self.label)

    async def _sleep_until_due(self) -> None:
        try:
            due = await self.next_due()
        except QueueUnavailable:
            due = None
        timeout = IDLE_RECHECK_SECONDS if due is None else due - time.time()
        timeout = max(0.0, min(timeout, IDLE_RECHECK_SECONDS))
        if timeout <= 0:
            await asyncio.sleep(0.01)  # due now but claimed by nobody: a lease race, look again
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout)

    async def drain(self, grace: float) -> None:
        """Let items in progress finish for up to ``grace`` seconds, then cancel the rest.

        A cancelled item is not lost: its lease expires and it is claimed again.
        """
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
