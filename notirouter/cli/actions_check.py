"""What ``notirouter check --connect`` says of chat actions: may each enricher's key write?

Sekoia.io documents ``GET /v1/me`` as the key check; whether its answer lists permissions is
not documented, so the line says what could be learnt without acting on any alert.
"""

from __future__ import annotations

import asyncio

from notirouter.api.enricher import EnricherContext
from notirouter.api.http import HttpClient
from notirouter.api.interaction import ActionsOptions, AlertWriter
from notirouter.config.loader import LoadedConfig


def action_enrichers(config: LoadedConfig) -> dict[str, list[str]]:
    """Enricher name -> the sinks whose ``actions`` write back through it."""
    found: dict[str, list[str]] = {}
    for name, options in config.sink_options.items():
        actions = getattr(options, "actions", None)
        if isinstance(actions, ActionsOptions):
            found.setdefault(actions.enricher, []).append(name)
    return found


def write_access_lines(config: LoadedConfig) -> list[str]:
    """``actions via enricher <name> (sinks ...): <what the key may do>``, one per enricher."""
    wanted = action_enrichers(config)
    if not wanted:
        return []

    async def ask() -> list[str]:
        http = HttpClient(max_connections=4)
        await http.start()
        lines = []
        try:
            for name, sinks in sorted(wanted.items()):
                options = config.enricher_options[name]
                enricher = config.types.enrichers[options.type](
                    name, options, EnricherContext(name, http)
                )
                assert isinstance(enricher, AlertWriter)  # checked when the config loaded
                problem = await enricher.write_access()
                shown = "may write back" if problem is None else problem
                lines.append(f"actions via enricher {name} ({', '.join(sinks)}): {shown}")
                await enricher.aclose()
        finally:
            await http.aclose()
        return lines

    return asyncio.run(ask())
