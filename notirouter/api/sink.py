"""The sink plugin API: options, the send contract and its outcomes.

A sink turns a :class:`~notirouter.api.message.Message` into something a service accepts and says
how the attempt went. The core owns everything around it: durable jobs, retries with backoff,
``Retry-After``, rate limits, concurrency and dead letters.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from notirouter.api.conversation import ConversationMode
from notirouter.api.http import HttpClient
from notirouter.api.message import Message

# The core gives up on an attempt a little after the sink's own timeout: a sink that hangs
# must not hold its job past the lease.
ATTEMPT_GRACE_SECONDS = 5.0
# A sink whose configuration does not fit its service pauses this long between tries: long
# enough not to hammer the service or flood the log, short enough to resume soon after a fix.
CONFIG_ERROR_PAUSE_SECONDS = 300.0


def attempt_bound(timeout: float) -> float:
    """How long the core lets one attempt run for a sink with this ``timeout``."""
    return timeout + min(ATTEMPT_GRACE_SECONDS, timeout)


class Outcome(StrEnum):
    """How one delivery attempt ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt, with a short human-readable detail (never a secret)."""

    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None
    config_error: bool = False
    """The sink's configuration does not fit the service: the core pauses the whole sink."""
    reference: str | None = None
    """The service's id of the message posted (or of the one edited), as the sink will want it
    back in ``Message.update_of`` / ``Message.reply_to``; ``None``: the service gave none."""

    @classmethod
    def delivered(cls, detail: str = "", reference: str | None = None) -> SendResult:
        """The service accepted the message; ``reference``: its id for the message, if any.

        A sink that returns a reference for the first message of a conversation gets it back
        on the later messages of that conversation (see :class:`ConversationMode`).
        """
        return cls(Outcome.DELIVERED, detail, reference=reference)

    @classmethod
    def retry(cls, detail: str, after: float | None = None) -> SendResult:
        """A transient failure: try again, no sooner than ``after`` seconds if given."""
        return cls(Outcome.RETRY, detail, after)

    @classmethod
    def misconfigured(cls, detail: str) -> SendResult:
        """The service refuses this sink's configuration (no STARTTLS, AUTH refused, ...).

        Every message would fail the same way until the operator fixes the config, so the
        message is kept, the whole sink pauses for ``CONFIG_ERROR_PAUSE_SECONDS`` and says
        why in the log; ``detail`` says what to change.
        """
        return cls(Outcome.RETRY, detail, CONFIG_ERROR_PAUSE_SECONDS, config_error=True)

    @classmethod
    def permanent(cls, detail: str) -> SendResult:
        """The service will never accept this message: dead-letter it now."""
        return cls(Outcome.PERMANENT, detail)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
STORM_AFTER_DEFAULT = 60.0


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError("expected a duration such as 30s, 1m, 2h or a number of seconds")
        return float(found.group(1)) * _UNITS[found.group(2)]
    return value


class StormOptions(BaseModel):
    """``storm:`` of a rate-limited sink, or of the whole config (README "Storm mode").

    When the sink's pending backlog would take longer than ``after`` to drain at its rate
    limit, its pending messages are folded into one digest per route until it caught up.
    ``storm: false`` turns it off (``enabled: false``); ``storm: true`` is the default.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    after: Annotated[float, BeforeValidator(_seconds), Field(gt=0, le=86_400)] = STORM_AFTER_DEFAULT

    @model_validator(mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        # ``storm: false`` / ``storm: true``: one model, so a mistake gets one clear error.
        if isinstance(value, bool):
            return {"enabled": value}
        return value


class SinkOptions(BaseModel):
    """Options every sink accepts; a sink's own ``Options`` subclasses this.

    Unknown keys are errors, reported with file, line and column.
    """

    model_config = ConfigDict(extra="forbid")

    type: str
    rate_limit: float | None = Field(
        default=None,
        ge=0,
        description="Messages per second; default: the sink type's own; 0: no limit at all.",
    )
    burst: int = Field(default=1, ge=1, le=1000, description="Messages allowed back to back.")
    timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds per attempt.")
    concurrency: int = Field(default=4, ge=1, le=256, description="Attempts in flight at once.")
    storm: StormOptions | None = Field(
        default=None,
        description="Storm mode of a rate-limited sink: {after: 1m}; false: off; default: "
        "the top-level storm setting (on, after 1m).",
    )


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the core hands a sink: its configured name and the shared HTTP client."""

    name: str
    http: HttpClient


OptionsT = TypeVar("OptionsT", bound=SinkOptions)


class Sink(ABC, Generic[OptionsT]):
    """Base class of every sink type.

    Subclasses set ``type_name`` (the ``type:`` in the config), ``Options`` (their pydantic
    options model) and optionally ``default_rate_limit`` (messages per second), then implement
    :meth:`render` and :meth:`send`.
    """

    type_name: ClassVar[str]
    Options: ClassVar[type[SinkOptions]] = SinkOptions
    default_rate_limit: ClassVar[float | None] = None

    def __init__(self, name: str, options: OptionsT, context: SinkContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    @property
    def rate_limit(self) -> float | None:
        """Messages per second this sink may send: configured, else the type's default.

        ``None``: no limit (``rate_limit: 0`` turns a type's default off).
        """
        configured = self.options.rate_limit
        if configured is None:
            return self.default_rate_limit
        return configured or None

    def conversation(self) -> ConversationMode | None:
        """How this sink continues a conversation; ``None`` (the default): it posts every
        message on its own, and the core never sets ``update_of`` or ``reply_to``.

        A sink that returns a mode must return ``SendResult.delivered(reference=...)`` for a
        post, and honour ``Message.update_of`` (edit that message) and ``Message.reply_to``
        (reply under it).
        """
        return None

    def conversation_support(self) -> str | None:
        """What ``notirouter check`` says of this sink's conversations (``None``: nothing).

        The default names the mode, if any; a sink that could keep conversations in another
        configuration says what this one lacks.
        """
        mode = self.conversation()
        return None if mode is None else f"conversation: {mode.value}"

    def status(self) -> Mapping[str, Any]:
        """What this sink holds in memory that an operator should see in ``notirouter status``
        (a token's expiry, a circuit of its own, a local cache): a small JSON-able mapping.

        The default is ``{}``. The core calls it from the event loop every
        ``server.status_interval`` while ``serve`` runs, so it must be cheap and must not block;
        it publishes the result with the process's report, shown under ``processes[].sinks.
        <name>.plugin``. Strings are redacted against the sink's own secrets before they are
        stored, but return no secret and no event data in the first place.
        """
        return {}

    def actions_support(self) -> str | None:
        """What ``notirouter check`` says of chat actions on this sink (``None``: nothing).

        A sink with buttons names them; one whose service cannot call back says so.
        """
        return None

    async def start(self) -> None:
        """Prepare resources before the first send (optional)."""

    async def aclose(self) -> None:
        """Release resources at shutdown (optional)."""

    @abstractmethod
    def render(self, message: Message) -> Any:
        """The payload this sink would send for ``message``, as JSON-able data.

        Used by ``notirouter route`` to show what would be sent, and by :meth:`send`.
        """

    @abstractmethod
    async def send(self, message: Message) -> SendResult:
        """Make one delivery attempt and classify it.

        Raise :class:`~notirouter.api.http.TransportError` (or return ``SendResult.retry``) for a
        transient failure; the core schedules the retry.
        """
