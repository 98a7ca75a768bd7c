"""Where a queue existed, an empty one is never created silently.

Next to the queue file, a hidden marker (``.<name>.created``) records that a queue was
created at that path. At start, a missing queue file with its marker still there means the
file was lost (deleted, a volume not mounted, a wrong path after a move): notirouter refuses to
start rather than create an empty queue and leave the pending deliveries behind, until the file
is restored or ``notirouter serve --init`` asks for a new, empty queue. With no marker (the very
first run, ``make run`` on a fresh clone) the queue is created and the marker written.

The marker is hidden so that ``rm notirouter.db*`` (the file and its ``-wal``/``-shm``) does
not take it along. A queue created before markers existed gets one the next time it opens.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("notirouter.queue")


class QueueFileMissing(Exception):
    """The queue file is gone but its marker says a queue existed there."""


def marker_path(path: Path) -> Path:
    """The marker that records a queue was created at ``path``."""
    return path.with_name(f".{path.name}.created")


def check_before_open(path: Path, *, init: bool) -> bool:
    """Decide whether opening ``path`` may create the file; ``True`` when it will be new.

    Raise :class:`QueueFileMissing` when the file is missing where a queue existed and
    ``init`` was not given.
    """
    if path.exists():
        return False
    marker = marker_path(path)
    if marker.exists() and not init:
        rescued = sorted(path.parent.glob(path.name + ".rescued-*"))
        hint = f"; a rescued copy is at {rescued[-1]}" if rescued else ""
        if _sidecar(path, "-wal").exists():
            hint += f"; keep {_sidecar(path, '-wal')} with it (recent commits may be there)"
        raise QueueFileMissing(
            f"the queue file {path} is missing, but a queue was created there ({marker} says "
            f"so): its pending events and deliveries were in that file{hint}. Restore it, or "
            "start a new, empty queue with `notirouter serve --init`"
        )
    _set_aside_sidecars(path)
    return True


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _set_aside_sidecars(path: Path) -> None:
    """Keep a lost queue's write-ahead log: move it out of the way of the new file.

    SQLite deletes a leftover ``-wal`` when it opens a new, empty database file, and with it
    the lost queue's last commits (everything since its last checkpoint).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for suffix in ("-wal", "-shm"):
        sidecar = _sidecar(path, suffix)
        if sidecar.exists():
            aside = sidecar.with_name(f"{sidecar.name}.set-aside-{stamp}")
            os.replace(sidecar, aside)
            log.warning("moved %s, left over from a lost queue, to %s", sidecar, aside)


def record_created(path: Path, *, new: bool, replaced_lost: bool) -> None:
    """Write the marker once the queue at ``path`` is open, and log a queue created now."""
    marker = marker_path(path)
    if new:
        if replaced_lost:
            log.warning(
                "started a new, empty queue at %s as --init asked; whatever the lost queue "
                "still held is not in it",
                path,
            )
        else:
            log.info("created a new queue at %s", path)
    if marker.exists() and not new:
        return
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = (
        f"A notirouter queue was created at {path} ({created}).\n"
        "While this file exists, notirouter will not create an empty queue in its place:\n"
        "restore the queue file, or run `notirouter serve --init` to start a new one.\n"
    )
    temporary = marker.with_name(marker.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, marker)
