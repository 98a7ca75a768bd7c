"""``notirouter serve`` as a real child process on loopback, for signal and descriptor tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

# Under pytest-xdist each worker takes ports from its own range, below the kernel's ephemeral
# range: a port one worker picked and binds a moment later (a child ``serve``, a sink started
# after a kill) is never handed to another worker's test in between.
PORTS_PER_WORKER = 2500
FIRST_WORKER_PORT = 10_000
_next_port = itertools.count()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (and, under xdist, this worker's alone)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            return port
    base = FIRST_WORKER_PORT + int(worker[2:]) * PORTS_PER_WORKER
    for _ in range(PORTS_PER_WORKER):
        candidate = base + next(_next_port) % PORTS_PER_WORKER
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise RuntimeError(f"no free port left in worker {worker}'s range")


async def start_serve(
    config: Path, port: int, log: Path, preexec: Callable[[], None] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``notirouter serve`` and wait until ``/readyz`` answers 200.

    The deadline (60 s) is for a loaded machine, where starting Python and importing
    everything can take many seconds; a process that exits fails at once.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "notirouter", "serve", "-c", str(config), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
        preexec_fn=preexec,  # only resource limits, set before exec
    )
    async with aiohttp.ClientSession() as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                async with client.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            if process.poll() is not None:
                break
            await asyncio.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"notirouter serve did not become ready:\n{log.read_text()}")


async def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit status, or ``None`` if still running after ``timeout`` seconds (then killed)."""
    for _ in range(int(timeout / 0.05)):
        if process.poll() is not None:
            return process.returncode
        await asyncio.sleep(0.05)
    process.kill()
    process.wait()
    return None
