"""Conversations: how a sink continues the messages about one thing (an alert, a case).

The first message for a ``Message.thread_key`` is posted; the sink returns the service's id of
it (``SendResult.delivered(reference=...)``) and the core stores that id per (sink, thread key).
Later messages for the key follow the sink's :class:`ConversationMode`: the core hands the sink
the same message with ``update_of`` (edit the first message) and/or ``reply_to`` (reply under
it) set to the stored reference. A sink that knows nothing of conversations returns no
reference, says ``conversation() is None``, and keeps posting every message.
"""

from __future__ import annotations

from enum import StrEnum


class ConversationMode(StrEnum):
    """What a sink does with the later messages of a conversation."""

    UPDATE = "update"
    """Edit the first message to show the current state."""
    THREAD = "thread"
    """Reply under the first message."""
    UPDATE_THREAD = "update+thread"
    """Edit the first message, and reply under it with the later message."""

    @property
    def edits(self) -> bool:
        """Whether later messages edit the first one."""
        return self is not ConversationMode.THREAD

    @property
    def replies(self) -> bool:
        """Whether later messages are replies under the first one."""
        return self is not ConversationMode.UPDATE
