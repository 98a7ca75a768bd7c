"""Group commit: one thread owns the SQLite connection and commits work in batches.

Requests hand operations to the writer and await a future. The writer takes everything that has
gathered while the previous transaction was being committed, runs it in one transaction (each
operation in its own savepoint, so one failure does not undo its neighbours), commits once,
then resolves all the futures. Under load many events share one fsync; at rest an operation
commits immediately. Callers learn of a commit failure, so nothing is acknowledged unstored.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
MAX_BATCH = 1024


class QueueUnavailable(Exception):
    """The queue could not commit (disk full, database locked, closed)."""


@dataclass(slots=True)
class _Job:
    operation: Operation
    future: asyncio.Future[Any]
    wakes: tuple[str, ...]


class GroupCommitWriter:
    """Runs operations on one connection in one thread, batching commits."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_commit: Callable[[set[str]], None],
    ) -> None:
        self._connect = connect
        self._on_commit = on_commit
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the connection in the writer thread; raise if that fails."""
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="notirouter-sqlite", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise QueueUnavailable(f"cannot open the queue: {self._startup_error}")

    async def submit(self, operation: Operation, *, wakes: tuple[str, ...] = ()) -> Any:
        """Run ``operation(connection)`` in the next transaction; return after it commits."""
        if self._closed or self._loop is None:
            raise QueueUnavailable("the queue is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put(_Job(operation, future, wakes))
        return await future

    def close(self) -> None:
        """Finish queued work, then stop the thread and close the connection."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        try:
            connection = self._connect()
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                first = self._jobs.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                        break
                    batch.append(job)
                self._commit(connection, batch)
                if stop:
                    return
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, batch: list[_Job]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        wakes: set[str] = set()
        try:
            # A lone operation needs no savepoint (most batches at low load): if it fails, the
            # whole transaction is rolled back instead.
            isolate = len(batch) > 1
            connection.execute("BEGIN IMMEDIATE")
            for job in batch:
                if isolate:
                    connection.execute("SAVEPOINT op")
                try:
                    result = job.operation(connection)
                except Exception as exc:
                    if isolate:
                        connection.execute("ROLLBACK TO op")
                        connection.execute("RELEASE op")
                    else:
                        connection.execute("ROLLBACK")
                    outcomes.append((job.future, False, exc))
                    continue
                if isolate:
                    connection.execute("RELEASE op")
                outcomes.append((job.future, True, result))
                wakes.update(job.wakes)
            if connection.in_transaction:
                connection.execute("COMMIT")
        except sqlite3.Error as exc:
            if connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("ROLLBACK")
            failure = QueueUnavailable(f"the queue could not commit: {exc}")
            outcomes = [(job.future, False, failure) for job in batch]
            wakes = set()
        assert self._loop is not None
        # RuntimeError: the event loop is gone, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._resolve, outcomes, wakes)

    def _resolve(
        self, outcomes: list[tuple[asyncio.Future[Any], bool, Any]], wakes: set[str]
    ) -> None:
        for future, ok, value in outcomes:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if wakes:
            self._on_commit(wakes)
