"""``logging:`` how the process log is written: readable text, or one JSON object per line.

Text is the default everywhere (a terminal, journald, ``docker logs``): it is what a person
reads. ``json`` is for log shippers (Loki, Elasticsearch, Datadog): one object per line with
the time in UTC, the level, the logger, the message and, on the lines about an event or a
delivery, its event id, route, sink, outcome and latency as fields of their own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _upper(value: Any) -> Any:
    # "level: info" reads as naturally as "level: INFO"; both mean the same.
    return value.upper() if isinstance(value, str) else value


LogFormat = Literal["text", "json"]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]


class LoggingConfig(BaseModel):
    """``logging:`` the process log's format and level (``serve --log-format/--log-level``)."""

    model_config = ConfigDict(extra="forbid")

    format: LogFormat = "text"
    level: LogLevel = "INFO"
