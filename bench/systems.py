"""The systems ``bench/compare.py`` measures, each started as its own process(es) on loopback.

References: the bare Starlette endpoint (``bare.py``), the seed's receiver
(``seed_receiver.py``) and Prometheus Alertmanager (``alertmanager.py``); and notirouter:
``serve``, plus ``worker`` processes when it runs on several. Every one listens on 127.0.0.1,
on a port taken just before it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import alertmanager
from harness import (
    BENCH_DIR,
    START_TIMEOUT,
    HarnessError,
    Notirouter,
    _stop,
    free_port,
    notirouter_command,
)

WORKER_RUNNING = "notirouter worker running"


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (``VmHWM``) in MB, or ``None`` once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


@dataclass
class Started:
    """A running system: where to POST events, its processes and their logs."""

    name: str
    ingest_url: str
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    notirouter: list[Notirouter] = field(default_factory=list)
    _log_files: list[IO[bytes]] = field(default_factory=list)

    def pids(self) -> list[int]:
        """Every process of the system (for RSS)."""
        return [s.pid for s in self.notirouter] + [p.pid for p in self.processes]

    def peak_rss_mb(self) -> float | None:
        """The sum of every process's peak RSS: what the system needed at its busiest."""
        peaks = [peak_rss_mb(pid) for pid in self.pids()]
        known = [p for p in peaks if p is not None]
        return round(sum(known), 1) if known else None

    def log_tail(self, lines: int = 20) -> str:
        """The end of each log, for error reports."""
        tails = [s.log_tail(lines) for s in self.notirouter]
        for path in self.logs:
            text = path.read_text(errors="replace") if path.exists() else ""
            tails.append("\n".join(text.splitlines()[-lines:]))
        return "\n---\n".join(t for t in tails if t)

    def close(self) -> list[int]:
        """SIGTERM every process (workers first, then serve); their exit codes."""
        codes = [_stop(process) for process in self.processes]
        codes += [server.close() for server in self.notirouter]
        for log in self._log_files:
            log.close()
        return codes


def _spawn(
    started: Started, command: Sequence[str], log: Path, **kwargs: Any
) -> subprocess.Popen[Any]:
    handle = log.open("wb")
    started._log_files.append(handle)
    started.logs.append(log)
    process = subprocess.Popen(
        list(command), stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, **kwargs
    )
    started.processes.append(process)
    return process


def _wait_http(started: Started, process: subprocess.Popen[Any], url: str) -> None:
    """Wait until ``url`` answers anything (even 404/405): the process listens."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            pass
        if process.poll() is not None:
            tail = started.log_tail()
            started.close()
            raise HarnessError(f"{started.name} exited with {process.returncode}:\n{tail}")
        time.sleep(0.05)
    started.close()
    raise HarnessError(f"{started.name} did not answer on {url} within {START_TIMEOUT:g}s")


def start_bare(workdir: Path) -> Started:
    """The bare Starlette endpoint."""
    port = free_port()
    started = Started("bare", f"http://127.0.0.1:{port}/hooks/bench")
    process = _spawn(
        started,
        [sys.executable, str(BENCH_DIR / "bare.py"), "--port", str(port)],
        workdir / "bare.log",
    )
    _wait_http(started, process, started.ingest_url)
    return started


def start_seed(workdir: Path, peers_url: str, api_key: str) -> Started:
    """The seed's receiver under uvicorn, as its documentation runs it (``uvicorn main:app``)."""
    port = free_port()
    started = Started("seed", f"http://127.0.0.1:{port}/hooks/bench")
    env = {
        **os.environ,
        "APIKEY": api_key,
        "TEAMS_WEBHOOK_URL": f"{peers_url}/to/seed",
        "SEKOIA_API_URL": peers_url,
    }
    command = [sys.executable, "-m", "uvicorn", "seed_receiver:app", "--host", "127.0.0.1"]
    process = _spawn(
        started, [*command, "--port", str(port)], workdir / "seed.log", cwd=BENCH_DIR, env=env
    )
    _wait_http(started, process, started.ingest_url)
    return started


def start_alertmanager(binary: str, workdir: Path, webhook_url: str) -> Started:
    """One Alertmanager sending every alert to ``webhook_url``."""
    port = free_port()
    config = alertmanager.write_config(workdir, webhook_url)
    started = Started("alertmanager", f"http://127.0.0.1:{port}/api/v2/alerts")
    process = _spawn(
        started, alertmanager.command(binary, config, port), workdir / "alertmanager.log"
    )
    _wait_http(started, process, f"http://127.0.0.1:{port}/-/ready")
    return started


def start_notirouter(config: Path, *, processes: int, log_level: str) -> Started:
    """``serve`` and ``processes - 1`` ``worker`` processes on the same config (and queue)."""
    server = Notirouter(config, log_level=log_level)
    started = Started("notirouter", "", notirouter=[server])
    started.ingest_url = f"{server.url}/hooks/bench-token-0123456789abcdef"
    workers = []
    for index in range(processes - 1):
        command = [*notirouter_command(), "worker", "-c", str(config), "--log-level", "INFO"]
        log = config.parent / f"worker-{index + 1}.log"
        workers.append((_spawn(started, command, log, cwd=config.parent), log))
    deadline = time.monotonic() + START_TIMEOUT
    for process, log in workers:
        while WORKER_RUNNING not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = started.log_tail()
                started.close()
                raise HarnessError(f"notirouter worker did not start:\n{tail}")
            time.sleep(0.05)
    return started
