"""Deliver a message as part of its conversation: post the first, then update or reply.

The first delivery for a (sink, thread key) posts and stores the service's id of the message;
later ones follow the sink's :class:`~notirouter.api.conversation.ConversationMode`. The
dispatcher claims a conversation sink's jobs in order (only the oldest unfinished job of a
thread key), so the first post's reference is stored before the next job of the key decides
between post and update, on every backend and with several processes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from notirouter.api.message import Message
from notirouter.api.sink import Outcome, SendResult, Sink
from notirouter.queue.protocol import MessageRefs

Attempt = Callable[[Message], Awaitable[SendResult]]


@dataclass(frozen=True, slots=True)
class Conversations:
    """The references of one sink's conversations, and how long they are kept."""

    refs: MessageRefs
    retention: float

    async def deliver(self, sink: Sink[Any], message: Message, attempt: Attempt) -> SendResult:
        """Deliver ``message`` by ``attempt``: as a post, an update and/or a reply.

        An update or reply that fails fails the whole job (retried as a whole: an edit to the
        same state twice is harmless). An edit the service refused and turned into a new post
        returns that post's reference, which replaces the stored one.
        """
        mode = sink.conversation()
        key = message.thread_key
        if mode is None or key is None:
            return await attempt(message)
        reference = await self.refs.get(sink.name, key, self.retention)
        if reference is None:
            return await self._post(sink.name, key, message, attempt)
        result = SendResult.delivered()
        edited = mode.edits and message.shows_state
        if edited:
            result = await attempt(message.model_copy(update={"update_of": reference}))
            if result.outcome is not Outcome.DELIVERED:
                return result
            if result.reference and result.reference != reference:
                reference = result.reference  # the edit was refused: a new first message
        if mode.replies or not edited:
            # A message that does not show the state (a comment) is never lost: a reply where
            # the sink replies, else a message of its own.
            reply_to = reference if mode.replies else None
            result = await attempt(message.model_copy(update={"reply_to": reply_to}))
            if result.outcome is not Outcome.DELIVERED:
                return result
        await self.refs.put(sink.name, key, reference)  # used now: its retention restarts
        return result

    async def _post(self, sink: str, key: str, message: Message, attempt: Attempt) -> SendResult:
        result = await attempt(message)
        if result.outcome is Outcome.DELIVERED and result.reference:
            # Stored before the job is finished: the next job of this key is not claimable
            # until then, so it finds the reference.
            await self.refs.put(sink, key, result.reference)
        return result
