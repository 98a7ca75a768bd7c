"""What ``notirouter check`` says of each sink's conversations (edits, threads, or neither)
and chat actions (buttons, or why there are none)."""

from __future__ import annotations

from notirouter.api.http import HttpClient
from notirouter.api.sink import SinkContext
from notirouter.config.loader import LoadedConfig


def conversation_lines(config: LoadedConfig) -> list[str]:
    """``sink <name>: <support>`` for every sink that has something to say about it.

    The sinks are built (not started: nothing is sent) to ask them, since what a sink can do
    depends on its options (a Slack webhook URL posts only, a bot token edits and threads).
    """
    http = HttpClient()
    lines = []
    for name, options in config.sink_options.items():
        sink = config.types.sinks[options.type](name, options, SinkContext(name, http))
        for support in (sink.conversation_support(), sink.actions_support()):
            if support:
                lines.append(f"sink {name}: {support}")
    return lines
