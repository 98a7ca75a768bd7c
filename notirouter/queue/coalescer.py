"""Calls that arrive while the previous batch is being written go out as the next batch.

A completion (a delivery's outcome) is one short statement; under load hundreds wait for their
turn at the database. The :class:`Coalescer` writes the first call at once, as a batch of one,
and everything that gathered meanwhile in the next batch: one round trip (PostgreSQL) or one
operation (the SQLite writer) for many outcomes. Nothing waits on a timer, so a lone call is
as fast as before; under load the batches grow by themselves.

One failing item must not lose its neighbours: when a batch fails for any reason other than an
unavailable queue (which fails every item alike, and each stays claimable after its lease), its
items are written again one at a time, each caller learning its own outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from notirouter.queue.sqlite.writer import QueueUnavailable

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
MAX_BATCH = 512


class BatchRefused(Exception):
    """Some item of a batch could not be stored (its data, not the queue): write them singly."""


class Coalescer(Generic[ItemT, ResultT]):
    """Runs ``write(items) -> results`` (one result per item, in order) over waiting calls."""

    def __init__(
        self,
        write: Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT]]],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self._waiting: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Batches written so far (each one round trip or one queue operation)."""

    async def submit(self, item: ItemT) -> ResultT:
        """Write ``item`` in the next batch; return its result once that batch is written."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())
        # A caller cancelled meanwhile (shutdown) cancels its future, not the write.
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[ItemT, asyncio.Future[ResultT]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self.max_batch]
                del self._waiting[: self.max_batch]
                await self._write_batch(batch)
        except asyncio.CancelledError:
            # The loop is closing: nobody may wait for ever on a write that will not happen.
            closing = QueueUnavailable("the queue is closing")
            for _, future in [*batch, *self._waiting]:
                _fail(future, closing)
            self._waiting.clear()
            raise
        finally:
            self._writer = None

    async def _write_batch(self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        self.batches += 1
        try:
            results = await self._write([item for item, _ in batch])
        except QueueUnavailable as exc:
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            for item, future in batch:  # find the one that fails; record the others
                await self._write_batch([(item, future)])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[ResultT], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
