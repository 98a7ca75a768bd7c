"""``operations:`` (operational events) and ``heartbeat:`` settings (README "Operational
events")."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from notirouter.api.http import SecretUrl


def _seconds(value: object) -> object:
    # The same duration syntax as the rest of the config (imported late: models imports us).
    from notirouter.config.models import parse_duration

    return parse_duration(value)


Seconds = Annotated[float, BeforeValidator(_seconds), Field(gt=0, le=7 * 86_400)]


class OperationsConfig(BaseModel):
    """``operations:`` when notirouter reports trouble about itself, and how often."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    failing_after: int = Field(default=5, ge=1, le=10_000)
    throttle: Seconds = 900.0


class HeartbeatConfig(BaseModel):
    """``heartbeat:`` a dead-man's-switch URL pinged while notirouter is ready."""

    model_config = ConfigDict(extra="forbid")

    url: SecretUrl
    every: Seconds = 300.0
    method: Literal["GET", "POST"] = "GET"
    timeout: Seconds = 10.0
