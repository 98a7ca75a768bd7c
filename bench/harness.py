"""Processes the bench starts: the loopback peers and ``notirouter serve``, each its own process.

Everything listens on 127.0.0.1 and on a port the process picked itself (port 0), so parallel
runs never collide and nothing has to guess a free port.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

BENCH_DIR = Path(__file__).resolve().parent
LISTENING = re.compile(r"notirouter listening on http://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class HarnessError(Exception):
    """A process the bench needs did not start or misbehaved."""


def cpu_seconds(pid: int, tid: int | None = None) -> float | None:
    """User + system CPU time of a process (all its threads), or of one of its threads
    (``tid``; the main thread's is the pid), or ``None`` off Linux."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        stat = Path(path).read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may itself contain spaces).
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(process: subprocess.Popen[Any]) -> int:
    """SIGTERM, then SIGKILL if the process does not exit in time; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class LoopbackPeers:
    """``bench/servers.py`` in a child process: the webhook sink and the fake Sekoia API."""

    def __init__(self, *, api_key: str, api_latency_ms: float) -> None:
        self.api_key = api_key
        # stdin stays an open pipe: the child stops when it closes, i.e. when the bench dies.
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "servers.py"),
                "--api-key",
                api_key,
                "--api-latency-ms",
                str(api_latency_ms),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            _stop(self.process)
            raise HarnessError("the loopback servers did not start")
        self.port: int = json.loads(line)["port"]

    @property
    def url(self) -> str:
        """Base URL of both the sink (``/sink``) and the fake API (``/v1/...``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """Process id (for CPU accounting)."""
        return self.process.pid

    def close(self) -> None:
        """Stop the child."""
        if self.process.stdin is not None:
            self.process.stdin.close()
            # Closing stdin is the child's cue to stop; give it a moment before SIGTERM.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        _stop(self.process)


@dataclass(frozen=True)
class ServeSettings:
    """What goes into the generated config besides the scenario's sinks and routes."""

    workdir: Path
    sink_url: str
    api_url: str
    api_key: str
    token: str
    enrich: bool
    access_log: bool = True
    route_workers: int | None = None
    sink_concurrency: int | None = None
    postgres_url: str | None = None  # a PostgreSQL queue instead of a SQLite file


def write_config(settings: ServeSettings) -> Path:
    """Write the notirouter config for one run: one hook, a webhook sink, one alert route."""
    route: dict[str, Any] = {
        "name": "alerts",
        "match": {"type": "alert", "action": "created"},
        "sinks": ["loopback"],
    }
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "access_log": settings.access_log},
        "hooks": [{"name": "bench", "token": settings.token, "source": "sekoia"}],
        "queue": (
            {"backend": "postgres", "url": settings.postgres_url}
            if settings.postgres_url
            else {"backend": "sqlite", "path": str(settings.workdir / "queue.db")}
        ),
        "sinks": {"loopback": {"type": "webhook", "url": settings.sink_url}},
        "routes": [route],
    }
    # Unset knobs stay out of the file, so a run measures notirouter's own defaults.
    if settings.route_workers is not None:
        config["delivery"] = {"route_workers": settings.route_workers}
    if settings.sink_concurrency is not None:
        config["sinks"]["loopback"]["concurrency"] = settings.sink_concurrency
    if settings.enrich:
        config["enrichers"] = {
            "sekoia": {
                "type": "sekoia",
                "api_key": settings.api_key,
                "base_url": settings.api_url,
                # UI links only (never requested); a loopback base_url has no region to follow.
                "app_url": "https://app.sekoia.io",
            }
        }
        route["enrich"] = ["sekoia"]
    path = settings.workdir / "notirouter.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def notirouter_command() -> list[str]:
    """How to run the notirouter installed with this interpreter.

    The console script when there is one: ``python -m notirouter`` would put the working
    directory first on ``sys.path``, so a source tree there could shadow the installed package.
    """
    script = Path(sys.executable).parent / "notirouter"
    return [str(script)] if script.exists() else [sys.executable, "-m", "notirouter"]


def enricher_types() -> set[str]:
    """The enricher types installed, from ``notirouter plugins --json``."""
    found = subprocess.run(
        [*notirouter_command(), "plugins", "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if found.returncode != 0:
        raise HarnessError(f"notirouter plugins --json failed:\n{found.stderr.strip()}")
    return {name for plugin in json.loads(found.stdout) for name in plugin["provides"]["enrichers"]}


class Notirouter:
    """``notirouter serve`` on a generated config, in a child process, on a free port."""

    def __init__(self, config: Path, *, log_level: str = "INFO") -> None:
        self.log_path = config.parent / "serve.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        # With INFO logs, port 0 and the "listening on" line say which port the server got;
        # quieter levels hide that line, so then take a free port here (a tiny race on
        # loopback, acceptable for a bench) and wait until it answers.
        announced = log_level in ("DEBUG", "INFO")
        port = 0 if announced else free_port()
        # The log goes to a file, not a pipe: at INFO notirouter writes a few lines per event
        # and a pipe nobody drains would block its event loop.
        self.process = subprocess.Popen(
            [
                *notirouter_command(),
                "serve",
                "-c",
                str(config),
                "--port",
                str(port),
                "--log-level",
                log_level,
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
        )
        self.port = self._wait_listening() if announced else self._wait_answering(port)

    @property
    def pid(self) -> int:
        """Process id (for CPU accounting and for attaching a profiler)."""
        return self.process.pid

    @property
    def url(self) -> str:
        """Base URL of the receiver."""
        return f"http://127.0.0.1:{self.port}"

    def _wait(self, ready: Callable[[], int | None]) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            port = ready()
            if port is not None:
                return port
            if self.process.poll() is not None:
                raise HarnessError(f"notirouter serve exited:\n{self.log_tail()}")
            time.sleep(0.02)
        self.close()
        raise HarnessError(f"notirouter serve did not listen within {START_TIMEOUT:g}s")

    def _wait_listening(self) -> int:
        def announced() -> int | None:
            match = LISTENING.search(self.log_path.read_text(errors="replace"))
            return int(match.group(1)) if match else None

        return self._wait(announced)

    def _wait_answering(self, port: int) -> int:
        def answering() -> int | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return port
            except OSError:
                return None

        return self._wait(answering)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for error reports."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> int:
        """Stop gracefully (SIGTERM, as a service manager would); the exit code."""
        try:
            return _stop(self.process)
        finally:
            self._log.close()


class Profiler:
    """py-spy recording one process until it exits, as collapsed stacks.

    py-spy is optional (``.venv/bin/pip install py-spy``). The output loads into speedscope or
    flamegraph.pl, and ``bench/profile_summary.py`` prints the hottest functions.
    """

    def __init__(self, path: Path, pid: int, *, gil_only: bool = False) -> None:
        self.path = path
        py_spy = Path(sys.executable).parent / "py-spy"
        if not py_spy.exists():
            raise HarnessError("--profile needs py-spy in the venv: .venv/bin/pip install py-spy")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "250",
                "--threads",
                "--format",
                "raw",
                "--output",
                str(path),
                # --gil: only the thread holding the GIL, i.e. Python CPU time, no waits.
                *(["--gil"] if gil_only else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait(self) -> None:
        """Wait for py-spy to write its file (it stops when the recorded process exits)."""
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            _stop(self.process)
