"""``notirouter plugins``."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from notirouter.api.manager import (
    PluginError,
    collect_types,
    describe_plugins,
    make_plugin_manager,
)
from notirouter.cli.common import EXIT_CONFIG, EXIT_OK, CommandFailed, print_json, run_command


def add_commands(commands: Any) -> None:
    """Register ``plugins``."""
    plugins = commands.add_parser(
        "plugins",
        help="list installed plugins",
        description="List installed plugins, their versions and the types they provide.",
    )
    plugins.add_argument("--json", action="store_true", help="machine-readable output")
    plugins.set_defaults(handler=run_command(plugins_command))


def plugins_command(args: argparse.Namespace) -> int:
    """Print every registered plugin."""
    try:
        manager = make_plugin_manager()
        infos = describe_plugins(manager, collect_types(manager))
    except PluginError as exc:
        raise CommandFailed(f"plugin error: {exc}", EXIT_CONFIG) from None
    if args.json:
        print_json([dataclasses.asdict(info) for info in infos])
        return EXIT_OK
    for info in infos:
        origin = "built-in" if info.builtin else info.distribution
        print(f"{info.name} {info.version} ({origin})")
        for kind, names in info.provides.items():
            if names:
                print(f"  {kind}: {', '.join(sorted(names))}")
        other_hooks = [h for h in info.hooks if not h.startswith("register_")]
        if other_hooks:
            print(f"  hooks: {', '.join(other_hooks)}")
    return EXIT_OK
