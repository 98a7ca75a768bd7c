"""Prometheus Alertmanager as a reference: found or installed, configured, started.

The same work as notirouter's "one webhook sink, no enrichment" scenario: each event is POSTed
as one alert to ``/api/v2/alerts`` (``loadgen.alertmanager_body``) and Alertmanager sends it to
one webhook receiver on the bench's loopback sink. So that *every alert is delivered, once and
at once*, the route:

- ``group_by: ['...']`` groups by every label, and each alert has its own ``event_uuid``: one
  group, hence one webhook POST, per alert (no batching of several alerts into one POST);
- ``group_wait: 0s``: a new group notifies immediately instead of waiting 30 s for company;
- ``group_interval`` and ``repeat_interval`` long (1 h, 24 h): no second notification of the
  same group during the run; ``send_resolved: false``: no resolved notification either (alerts
  without ``endsAt`` resolve after ``resolve_timeout``, 5 min, past the run).

It runs with in-memory state on a temporary ``--storage.path``, gossip off
(``--cluster.listen-address=``): a single, not durable, instance.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

BINARIES = ("prometheus-alertmanager", "alertmanager")
PACKAGE = "prometheus-alertmanager"


def find_binary() -> str | None:
    """The Alertmanager executable on PATH (Debian names it ``prometheus-alertmanager``)."""
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def ensure_installed() -> tuple[str | None, str]:
    """The executable, installing the Debian package when it is missing and we can; else
    ``None`` and why not."""
    found = find_binary()
    if found:
        return found, "installed"
    if shutil.which("apt-get") is None:
        return None, f"not installed and no apt-get to install {PACKAGE}"
    if os.geteuid() == 0:
        command = ["apt-get", "install", "-y", PACKAGE]
    elif shutil.which("sudo"):
        command = ["sudo", "-n", "apt-get", "install", "-y", PACKAGE]  # -n: never prompt
    else:
        return None, f"not installed, and installing {PACKAGE} needs root (no sudo)"
    print(f"bench: installing Alertmanager: {' '.join(command)}", flush=True)
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(command)} did not finish within 300 s"
    found = find_binary()
    if found:
        return found, "installed by the bench"
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"{' '.join(command)} failed (exit {done.returncode}): {tail[0]}"


def write_config(directory: Path, webhook_url: str) -> Path:
    """One route, one webhook receiver, every alert notified on its own and at once."""
    config = {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "bench",
            "group_by": ["..."],
            "group_wait": "0s",
            "group_interval": "1h",
            "repeat_interval": "24h",
        },
        "receivers": [
            {
                "name": "bench",
                "webhook_configs": [{"url": webhook_url, "send_resolved": False, "max_alerts": 0}],
            }
        ],
    }
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def command(binary: str, config: Path, port: int) -> list[str]:
    """The command line of one local, single, in-memory instance on 127.0.0.1:port."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={config.parent / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]


def version(binary: str) -> str:
    """``0.25.0`` from ``alertmanager --version`` (``?`` if it does not say)."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    words = (done.stdout + done.stderr).split()
    return words[words.index("version") + 1] if "version" in words[:-1] else "?"
