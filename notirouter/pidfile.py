"""The pid file through which ``notirouter reload`` finds the running processes.

Where: ``server.pid_file`` when set (relative to the config file), else, on SQLite, next to
the queue file (``<queue.path>.pid``): the one process that owns that file writes it. On
PostgreSQL several receivers and workers may run: each one that shares a pid file adds its own
line to it and takes it out when it stops, so ``reload`` signals every process on this host
that uses it; processes on other hosts are out of its reach.

A line left by a process that died is ignored: a pid is signalled only while it is alive and,
where ``/proc`` can tell, still a notirouter process (a pid reused by another program must not
receive a SIGHUP, which ends most programs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from notirouter.config.loader import LoadedConfig, resolve_queue_path

PID_SUFFIX = ".pid"


def pid_file_for(config: LoadedConfig) -> Path | None:
    """The pid file of ``config``'s processes (``None``: PostgreSQL without ``server.pid_file``)."""
    configured = config.app.server.pid_file
    if configured:
        return Path(resolve_queue_path(configured, config.path))
    if config.app.queue.backend == "sqlite":
        return Path(config.app.queue.path + PID_SUFFIX)
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # several processes may add or remove lines
        yield descriptor
    finally:
        os.close(descriptor)


def _read_pids(descriptor: int) -> list[int]:
    os.lseek(descriptor, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(descriptor, 65536):
        chunks.append(chunk)
    text = b"".join(chunks).decode("ascii", errors="replace")
    return [int(line) for line in text.split() if line.isdigit()]


def _write_pids(descriptor: int, pids: list[int]) -> None:
    os.ftruncate(descriptor, 0)
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.write(descriptor, "".join(f"{pid}\n" for pid in pids).encode())


def register(path: Path, pid: int | None = None) -> None:
    """Add this process (or ``pid``) to the pid file, dropping lines of processes gone."""
    pid = os.getpid() if pid is None else pid
    with _locked(path) as descriptor:
        alive = [other for other in _read_pids(descriptor) if other != pid and is_notirouter(other)]
        _write_pids(descriptor, [*alive, pid])


def unregister(path: Path, pid: int | None = None) -> None:
    """Take this process (or ``pid``) out of the pid file; remove the file once empty."""
    pid = os.getpid() if pid is None else pid
    with contextlib.suppress(FileNotFoundError), _locked(path) as descriptor:
        left = [other for other in _read_pids(descriptor) if other != pid]
        _write_pids(descriptor, left)
        if not left:
            path.unlink()


def running(path: Path) -> list[int]:
    """The pids in the pid file that are alive notirouter processes."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        # Shared lock: a process registering truncates then rewrites the file, and a reader in
        # between would find it empty ("no running process") while two are running.
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        pids = _read_pids(descriptor)
    finally:
        os.close(descriptor)
    return [pid for pid in pids if is_notirouter(pid)]


def is_notirouter(pid: int) -> bool:
    """Whether ``pid`` is alive (or owned by another user) and, per ``/proc``, notirouter."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's: the signal itself will say whether we may
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no /proc on this system: trust the pid
    except PermissionError:
        return True
    return b"notirouter" in command
