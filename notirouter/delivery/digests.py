"""What a flushed group sends: its single message, or a digest (README "Storm control").

A group's first message goes out alone when it gathered only one item (it reads as it would
without grouping); anything else becomes one :class:`~notirouter.api.message.Digest`, carried
by a Message whose title, text and facts say it all, so every sink can deliver it.
"""

from __future__ import annotations

import pydantic

from notirouter.api.message import Digest, DigestItem, Message, Severity
from notirouter.queue.records import DueGroup, FlushedMessage, FoldedItem, GroupedItem
from notirouter.routing.grouping import GROUP_KIND, group_facts

STATUS_FACT = "status"
STORM_KIND = "storm"
STORM_MAX_ITEMS = 50  # as group.max_items defaults: listed in a storm digest, the rest counted
SEVERITIES = list(Severity)


def flushed_message(group: DueGroup) -> FlushedMessage:
    """The message ``group`` sends now, and the event id its deliveries are recorded under."""
    items = group.items
    first = items[0]
    # A throttle's overflow is always a digest: a single late message must say why it is late.
    alone = group.kind == GROUP_KIND and group.flushes == 0 and len(items) == 1
    if alone and first.message_json is not None:
        return FlushedMessage(first.event_id, first.message_json)
    message = digest_message(group)
    # Item ids are never reused: one event id per digest, in every process and after restarts.
    return FlushedMessage(f"digest:{first.id}", message.model_dump_json())


def digest_message(group: DueGroup) -> Message:
    """The digest of everything ``group`` holds, as a Message any sink can deliver."""
    listed = [_listed(item) for item in group.items if item.message_json is not None]
    left_out = group.items[len(listed) :]
    links = {item.link for item in left_out}
    more_link = links.pop() if len(links) == 1 else None
    rank = max(min(item.severity, len(SEVERITIES) - 1) for item in group.items)
    digest = Digest(
        route=group.route,
        group=group_facts(group.group_key),
        count=len(group.items),
        severity=SEVERITIES[max(rank, 0)],
        items=tuple(listed),
        more=len(left_out),
        more_link=more_link,
        event_ids=tuple(item.event_id for item in group.items),
    )
    return Message(
        title=digest.title(),
        text=digest.text(),
        severity=digest.severity,
        link=more_link,
        link_label="Open",
        facts=tuple(fact for fact in digest.group if fact.value),
        route=group.route,
        digest=digest,
    )


def _listed(item: GroupedItem) -> DigestItem:
    assert item.message_json is not None
    try:
        message = Message.model_validate_json(item.message_json)
    except pydantic.ValidationError:
        # Stored by another version: still counted and named, never dropped.
        return DigestItem(title=f"event {item.event_id}", event_id=item.event_id, link=item.link)
    status = next((f.value for f in message.facts if f.name.lower() == STATUS_FACT), None)
    return DigestItem(
        title=message.title,
        severity=message.severity,
        status=status or None,
        link=message.link,
        event_id=item.event_id,
    )


def storm_digest(route: str, items: list[FoldedItem]) -> FlushedMessage:
    """The digest storm mode sends for a route's folded backlog (README "Storm mode").

    Every folded delivery is counted; the first :data:`STORM_MAX_ITEMS` are listed. Its event
    id names the first folded delivery: delivery ids are never reused, so it is unique.
    """
    held: list[GroupedItem] = []
    for item in items:
        try:
            message: Message | None = Message.model_validate_json(item.message_json)
        except pydantic.ValidationError:
            message = None
        rank = message.severity.rank if message is not None else 0
        link = message.link if message is not None else None
        listed = item.message_json if len(held) < STORM_MAX_ITEMS else None
        held.append(GroupedItem(item.id, item.event_id, rank, link, listed))
    group = DueGroup(STORM_KIND, route, "[]", (), STORM_MAX_ITEMS, 1, held)
    return FlushedMessage(f"storm:{items[0].id}", digest_message(group).model_dump_json())
