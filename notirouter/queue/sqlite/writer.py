"""Group commit: one thread owns the SQLite connection and commits work in batches.

Requests hand operations to the writer and await a future. The writer takes everything that has
gathered while the previous transaction was being committed, runs it in one transaction (each
operation in its own savepoint, so one failure does not undo its neighbours), commits once,
then resolves all the futures. Under load many events share one fsync; at rest an operation
commits immediately. Callers learn of a commit failure, so nothing is acknowledged unstored.

A SQLite error, whether in an operation or at the commit (a malformed file, a read-only or
failing disk), reaches the caller as :class:`QueueUnavailable`, and the writer remembers it as
``failing`` until a transaction that changes rows commits again (readiness reads it). Before
each commit a ``guard`` may check that the file is still the one opened; once it is not
(:class:`~notirouter.queue.sqlite.file_identity.FileLost`), every later transaction is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from notirouter.queue.sqlite.file_identity import FileLost
from notirouter.throttled_log import ThrottledLog

log = logging.getLogger("notirouter.queue")
T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
Guard = Callable[[sqlite3.Connection], None]
LostHandler = Callable[[sqlite3.Connection, FileLost], None]
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
        *,
        guard: Guard | None = None,
        on_lost: LostHandler | None = None,
    ) -> None:
        self._connect = connect
        self._on_commit = on_commit
        self._guard = guard
        self._on_lost = on_lost
        self.failing: str | None = None
        """Why the last transaction failed in SQLite; ``None`` once one commits changes."""
        self.lost: str | None = None
        """Why the file is no longer the one opened; once set, every transaction is refused."""
        self._failure_log = ThrottledLog(log)
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
        if self.lost is not None:
            refusal = QueueUnavailable(self.lost)
            self._finish([(job.future, False, refusal) for job in batch], set())
            return
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        wakes: set[str] = set()
        changes = connection.total_changes
        failure: str | None = None
        lost: FileLost | None = None
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
                    if isinstance(exc, sqlite3.Error):
                        failure = str(exc)
                        unavailable = QueueUnavailable(f"the queue could not store: {exc}")
                        outcomes.append((job.future, False, unavailable))
                    else:
                        outcomes.append((job.future, False, exc))
                    continue
                if isolate:
                    connection.execute("RELEASE op")
                outcomes.append((job.future, True, result))
                wakes.update(job.wakes)
            if connection.in_transaction:
                if self._guard is not None:
                    self._guard(connection)
                connection.execute("COMMIT")
        except FileLost as exc:
            self._rollback(connection)
            self.lost = failure = str(exc)
            lost = exc
            outcomes = [(job.future, False, QueueUnavailable(self.lost)) for job in batch]
            wakes = set()
        except (sqlite3.Error, OSError) as exc:
            self._rollback(connection)
            failure = str(exc)
            unavailable = QueueUnavailable(f"the queue could not commit: {exc}")
            outcomes = [(job.future, False, unavailable) for job in batch]
            wakes = set()
        if failure is not None:
            # Pages read from a damaged file stay in the connection's cache: drop them, so
            # that a file repaired in place is read afresh.
            with contextlib.suppress(sqlite3.Error):
                connection.execute("PRAGMA shrink_memory")
        self._note_health(failure, connection.total_changes != changes)
        self._finish(outcomes, wakes)
        if lost is not None and self._on_lost is not None:
            self._on_lost(connection, lost)  # after answering: a copy of a big file takes time

    @staticmethod
    def _rollback(connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")

    def _note_health(self, failure: str | None, changed: bool) -> None:
        if failure is not None:
            if self.lost is None:  # a lost file is reported, loudly, by its handler
                self._failure_log.log(
                    logging.ERROR, "storage", "the queue cannot store: %s", failure
                )
            self.failing = failure
        elif changed and self.failing is not None:
            log.warning("the queue stores again (the last failure was: %s)", self.failing)
            self.failing = None

    def _finish(
        self, outcomes: list[tuple[asyncio.Future[Any], bool, Any]], wakes: set[str]
    ) -> None:
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
