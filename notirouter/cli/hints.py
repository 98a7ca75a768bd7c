"""Hints for the mistakes a newcomer makes first: each error says what to do next."""

from __future__ import annotations

import os

from notirouter.config.loader import DEFAULT_CONFIG_PATH

EXAMPLE_CONFIG = "config.example.yaml"


def missing_config_hint(path: str) -> str | None:
    """What to do when the config file ``path`` does not exist; ``None`` when it does."""
    if os.path.exists(path):
        return None
    where = "" if os.path.exists(EXAMPLE_CONFIG) else " from the source tree"
    return (
        f"hint: there is no config file at {path}: name one with -c CONFIG "
        f"(the demo config: -c {EXAMPLE_CONFIG}{where}) or set NOTIROUTER_CONFIG; "
        f"the default is $NOTIROUTER_CONFIG, else ./{DEFAULT_CONFIG_PATH}"
    )
