"""Is the queue file still the one the writer opened?

A connection keeps writing into the file it opened even after that file is deleted or replaced
(``rm``, a restore over it, a volume swapped): SQLite does not notice in WAL mode, the commits
succeed, and every event answered 202 goes into a file nobody can open again. The writer
compares the file's identity (device and inode) at the path with the one it opened before each
commit; a single ``stat`` costs microseconds next to the commit's fsync.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("notirouter.queue")


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What names one file on one file system, whatever its path."""

    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """The identity of the file now at ``path`` (raises ``OSError`` if there is none)."""
        status = os.stat(path)
        return cls(status.st_dev, status.st_ino)


class FileLost(Exception):
    """The queue file was deleted or replaced: this connection writes into a lost file."""


def check_identity(path: Path, opened: FileIdentity) -> None:
    """Raise :class:`FileLost` if ``path`` no longer names the file that was ``opened``.

    Any other ``OSError`` (a file system that stopped answering) propagates: the file may
    well come back.
    """
    try:
        now = FileIdentity.of(path)
    except FileNotFoundError:
        raise FileLost(f"the queue file {path} was deleted or replaced (it is gone)") from None
    if now != opened:
        raise FileLost(f"the queue file {path} was deleted or replaced (by another file)")


def rescue_copy(connection: sqlite3.Connection, path: Path) -> Path:
    """Copy the lost queue, through the connection still open on it, next to ``path``.

    ``VACUUM INTO`` writes a consistent copy (what the write-ahead log holds included), so the
    events and deliveries still pending can be put back while notirouter is stopped.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.rescued-{stamp}")
    connection.execute("VACUUM INTO ?", (str(target),))
    return target


def report_lost(connection: sqlite3.Connection, path: Path, lost: FileLost) -> None:
    """Rescue what the lost file holds, and say loudly what happened and what to do."""
    try:
        rescued = f"a copy of it is at {rescue_copy(connection, path)}"
    except (sqlite3.Error, OSError) as exc:
        rescued = f"it could not be copied ({exc})"
    log.error(
        "%s while notirouter was running: new events are refused (503) and /readyz fails "
        "from now on. The queue's pending events and deliveries were in that file; %s. "
        "Stop notirouter, put the file back at %s, and start it again",
        lost,
        rescued,
        path,
    )
