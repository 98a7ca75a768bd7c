"""The source plugin API: turn a webhook body into a typed :class:`~notirouter.api.events.Event`."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from notirouter.api.events import Event


class Source(ABC):
    """Base class of every source type (the ``source:`` of a hook).

    :meth:`parse` raises :class:`pydantic.ValidationError` for a body that is not a valid event;
    the receiver answers ``422`` with the error locations.
    """

    type_name: ClassVar[str]

    @abstractmethod
    def parse(self, payload: dict[str, Any]) -> Event:
        """Validate a decoded JSON object into an event."""

    def dedupe_key(self, event: Event, body: bytes) -> str:
        """The key under which a repeated delivery of the same event is recognised.

        The default is a digest of the exact body; sources with an event id should use it.
        """
        return "sha256:" + hashlib.sha256(body).hexdigest()
