"""``notirouter reload``: make the running processes read their config again (SIGHUP).

The config is checked here first: one with errors is reported as ``check`` does and no
process is signalled (the running processes would reject it and keep theirs anyway). The
processes are found through their pid file (see :mod:`notirouter.pidfile`).
"""

from __future__ import annotations

import argparse
import os
import signal
from typing import Any

from notirouter.cli.common import CommandFailed, add_config_option, load, run_command
from notirouter.pidfile import pid_file_for, running

EXIT_SIGNALLED = 0
EXIT_NOT_RUNNING = 5


def add_commands(commands: Any) -> None:
    """Register ``reload``."""
    reload = commands.add_parser(
        "reload",
        help="make the running serve/worker processes read the config again",
        description=(
            "Check the config, then send SIGHUP to every notirouter process named in its pid "
            "file (server.pid_file, else <queue.path>.pid on SQLite). Exit codes: 0 signalled, "
            "1 invalid config (nothing signalled), 5 no running process found or signalled."
        ),
    )
    add_config_option(reload)
    reload.set_defaults(handler=run_command(reload_command))


def reload_command(args: argparse.Namespace) -> int:
    """Signal the processes; say which, and where their outcome shows."""
    config = load(args)
    pid_file = pid_file_for(config)
    if pid_file is None:
        raise CommandFailed(
            "a PostgreSQL queue has no default pid file: set server.pid_file (and restart), "
            "or send SIGHUP yourself (systemctl reload notirouter)",
            EXIT_NOT_RUNNING,
        )
    pids = running(pid_file)
    if not pids:
        raise CommandFailed(f"no running notirouter process found in {pid_file}", EXIT_NOT_RUNNING)
    signalled = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            continue  # ended since it was read
        except PermissionError:
            print(f"process {pid}: not allowed to signal it (run as its user or root)")
            continue
        signalled.append(pid)
        print(f"signalled notirouter process {pid} (pid file {pid_file})")
    if not signalled:
        raise CommandFailed("no process could be signalled", EXIT_NOT_RUNNING)
    print(
        "the outcome is in each process's log and in notirouter_config_reloads_total; "
        "processes on other hosts need their own reload"
    )
    return EXIT_SIGNALLED
