"""Chat actions: buttons on alert messages whose clicks are written back to the alert's service.

A sink that shows buttons (Slack and Mattermost in token mode) subclasses
:class:`InteractiveSink`: it renders the buttons on a message whose ``action_target`` is set,
authenticates a click that reaches ``POST /interactions/<interaction_service>`` (returning a
:class:`Click`, or ``None`` for the one ``401`` answer), and tells the chat what came of it.
An enricher that can act on what its messages are about (the ``sekoia`` enricher) subclasses
:class:`AlertWriter`. The core stores each verified click as a durable job, checks who may act,
calls the writer, retries transient failures and records every outcome.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from notirouter.api.sink import SendResult

CONFIRM_SECONDS = 120.0
"""How long a first click stays armed where the service has no confirmation dialog."""


class ChatAction(StrEnum):
    """What a chat user can do to an alert from its message."""

    ACKNOWLEDGE = "acknowledge"
    REJECT = "reject"
    """Reject as a false positive (always confirmed first)."""
    COMMENT = "comment"

    @property
    def verb(self) -> str:
        """``acknowledge``, ``reject``, ``comment on``: for "could not <verb> the alert"."""
        return "comment on" if self is ChatAction.COMMENT else self.value

    @property
    def done(self) -> str:
        """``Acknowledged``, ``Rejected as a false positive``, ``Commented``."""
        return {
            ChatAction.ACKNOWLEDGE: "Acknowledged",
            ChatAction.REJECT: "Rejected as a false positive",
            ChatAction.COMMENT: "Commented",
        }[self]


class ActionsOptions(BaseModel):
    """``actions:`` of a sink: which enricher acts on the alerts, and who may use the buttons.

    A sink type with buttons subclasses it with what its service needs (a signing secret).
    """

    model_config = ConfigDict(extra="forbid")

    enricher: str = Field(min_length=1, description="The enricher that writes actions back.")
    allow: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="Chat user ids (or, on Slack, user group ids) who may act; empty: anyone "
        "the service shows the button to.",
    )


class Click(BaseModel):
    """A verified click: who did what to which alert, from which message.

    ``message`` is the sink's reference of the message clicked (as in ``SendResult.reference``);
    ``context`` is whatever else the sink needs to answer (the message's blocks, a
    ``response_url``), from the authenticated request only.
    """

    model_config = ConfigDict(frozen=True)

    sink: str
    action: ChatAction
    alert: str
    user_id: str
    user_name: str = ""
    text: str = ""
    message: str
    received_at: float = Field(default_factory=time.time)
    context: dict[str, Any] = Field(default_factory=dict)

    @property
    def who(self) -> str:
        """``@name`` (or the id) of the user, plain text."""
        return f"@{self.user_name}" if self.user_name else self.user_id

    def stamp(self) -> str:
        """``14:03Z``: when the click arrived, UTC."""
        return time.strftime("%H:%MZ", time.gmtime(self.received_at))


@dataclass(frozen=True, slots=True)
class ActionReport:
    """What the chat is told about a click: done, not done (and why), or still being tried."""

    click: Click
    done: bool
    text: str
    """The line shown: ``Acknowledged by @alice at 14:03Z`` or ``could not acknowledge: ...``."""
    final: bool = True
    """``False``: a transient failure, tried again later."""


class AlertWriter(ABC):
    """An enricher that can write chat actions back to the service its alerts come from."""

    @abstractmethod
    async def change_status(self, alert: str, action: ChatAction, comment: str) -> SendResult:
        """Apply ``action`` (acknowledge, reject) to ``alert`` with ``comment`` as the reason.

        ``delivered``: done; ``retry``: transient (tried again); ``permanent``: refused, the
        detail says why in words a chat user understands.
        """

    @abstractmethod
    async def add_comment(self, alert: str, content: str, author: str) -> SendResult:
        """Comment on ``alert`` as ``author`` (the chat user), same outcomes."""

    async def write_access(self) -> str | None:
        """For ``check --connect``: ``None`` when the key may write, else what it lacks."""
        return None


class InteractiveSink(ABC):
    """A sink whose messages carry action buttons (mixed into a :class:`Sink` subclass)."""

    interaction_service: ClassVar[str]
    """The endpoint's last segment: ``POST /interactions/<interaction_service>``."""

    @abstractmethod
    def actions(self) -> ActionsOptions | None:
        """The sink's ``actions:`` options (``None``: no buttons)."""

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Click | None:
        """Authenticate the request and read its click; ``None``: refuse (401, no detail).

        Called for every sink of this service with actions: a request another sink signed
        is ``None`` here. No side effect.
        """

    def replay_mark(self, headers: Mapping[str, str]) -> str | None:
        """What identifies this request for replay refusal (a signature), or ``None``."""
        return None

    def needs_confirmation(self, click: Click) -> bool:
        """Whether this click only arms a confirmation (the service has no dialog of its own)."""
        return False

    def answer(self, click: Click, *, armed: bool = False) -> dict[str, Any] | None:
        """The JSON to answer the request with (``armed``: a first click awaiting its second)."""
        return None

    async def is_allowed(self, click: Click, allow: list[str]) -> bool:
        """Whether the user may act, given a non-empty ``allow`` list."""
        return click.user_id in allow

    @abstractmethod
    async def tell(self, report: ActionReport) -> SendResult:
        """Show ``report`` in the alert's conversation: a reply in its thread and (done) the
        first message edited with ``report.text``; a failure to the user who clicked."""
