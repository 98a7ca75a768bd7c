"""Reconciliation with the Sekoia.io API: the alert changes no webhook delivered.

Sekoia.io documents no retry of its webhooks: what it sent while notirouter was down is lost.
Every ``interval``, one process (the holder of each stream's lease) lists the alerts updated
since the stream's watermark, ``GET /v1/sic/alerts?date[updated_at]=<from>,<to>&sort=updated_at``
(one stream per community, with ``match[community_uuid]``), and hands each change to the core's
feed, which enqueues it as an ``alert`` event unless a webhook event already reported it.

Pages are read with ``limit``/``offset`` from the last ``updated_at`` second reached, not from
the first: an alert updated while the list is read leaves its place, which shifts a plain offset
past an alert not yet read. After each page the changes and the watermark are committed
together, so the watermark never passes a change not in the queue; after downtime, the first
pass catches up from it (at most ``lookback`` back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from notirouter import ChangeFeed, ReconciledChange

from .client import SekoiaApi, SekoiaApiError
from .options import ReconcileOptions
from .places import valid_uuid

log = logging.getLogger("notirouter.plugins.sekoia")
LIST_PATH = "/v1/sic/alerts"
MAX_PAGES_PER_PASS = 10_000
ALL_COMMUNITIES = "all"


def epoch(value: Any) -> float | None:
    """An alert time as epoch seconds: the list gives numbers, other answers ISO strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def change_key(alert: Any) -> str | None:
    """The key of an alert's state: its uuid and ``updated_at`` (to the second)."""
    if not isinstance(alert, dict):
        return None
    uuid = valid_uuid(alert.get("uuid"))
    updated = epoch(alert.get("updated_at"))
    if uuid is None or updated is None:
        return None
    return f"sekoia-alert:{uuid}:{int(updated)}"


def api_time(moment: float) -> str:
    """The API's date filter format, ``YYYY-MM-DDTHH:MM:SS`` in UTC."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class AlertReconciler:
    """The polling loop of one ``sekoia`` enricher (see the module docstring)."""

    def __init__(
        self, enricher: str, api: SekoiaApi, options: ReconcileOptions, communities: list[str]
    ) -> None:
        self.enricher = enricher
        self.api = api
        self.options = options
        self.streams = communities or [ALL_COMMUNITIES]
        self.lease = max(30.0, 3 * options.interval)
        self._holding: dict[str, bool] = {}

    async def run(self, feed: ChangeFeed) -> None:
        """Poll every stream each ``interval``, until cancelled; release the leases then."""
        feed.keep_changes(2 * self.options.lookback)
        caught_up: set[str] = set()
        try:
            while True:
                # One report per reading of every stream: a catch-up is one event, whatever
                # the number of communities.
                found: list[ReconciledChange] = []
                streams: list[str] = []
                catch_up = False
                for stream in self.streams:
                    before = len(found)
                    try:
                        if await self.poll(feed, stream, found, catch_up=stream not in caught_up):
                            catch_up = catch_up or stream not in caught_up
                            caught_up.add(stream)
                    except asyncio.CancelledError:
                        raise
                    except SekoiaApiError as exc:
                        # The next pass starts from the same watermark: nothing is skipped.
                        level = logging.DEBUG if exc.reported else logging.WARNING
                        log.log(level, "enricher %s: reconciliation paused: %s", self.enricher, exc)
                    except Exception as exc:
                        log.warning(
                            "enricher %s: reconciliation of %s failed: %s: %s",
                            self.enricher,
                            stream,
                            type(exc).__name__,
                            exc,
                        )
                    if len(found) > before:
                        streams.append(stream)
                # What a reading committed is reported even if it stopped on an error.
                feed.recovered(", ".join(streams), found, catch_up=catch_up)
                await asyncio.sleep(self.options.interval)
        finally:
            for stream in self.streams:
                with contextlib.suppress(Exception):
                    await feed.release(stream)

    async def poll(
        self, feed: ChangeFeed, stream: str, found: list[ReconciledChange], *, catch_up: bool
    ) -> bool:
        """One pass over ``stream``, adding what it enqueued to ``found``; ``False`` when
        another process holds its lease."""
        held = await feed.hold(stream, self.lease)
        if self._holding.get(stream) != held:
            self._holding[stream] = held
            log.info(
                "enricher %s: %s reconciles %s",
                self.enricher,
                "this process" if held else "another process",
                stream,
            )
        if not held:
            return False
        now = time.time()
        until = now - self.options.delay
        watermark = await feed.watermark(stream)
        if watermark is None:
            # Never polled: what happened before notirouter watched is not its to recover.
            await feed.commit(stream, [], until)
            log.info(
                "enricher %s: reconciliation of %s starts from now (lookback %gs from then on)",
                self.enricher,
                stream,
                self.options.lookback,
            )
            return True
        start = max(watermark, now - self.options.lookback)
        if watermark < start:
            log.warning(
                "enricher %s: reconciliation of %s was stopped since %s; changes before %s "
                "(lookback) are not recovered",
                self.enricher,
                stream,
                api_time(watermark),
                api_time(start),
            )
        before = len(found)
        if not await self._pass(feed, stream, start, until, found):
            return False
        if catch_up and len(found) == before:
            log.info(
                "enricher %s: reconciliation of %s caught up from %s: nothing was missed",
                self.enricher,
                stream,
                api_time(start),
            )
        return True

    async def _pass(
        self,
        feed: ChangeFeed,
        stream: str,
        start: float,
        until: float,
        recovered: list[ReconciledChange],
    ) -> bool:
        """Read every page of changes in ``[start, until]``, adding what was enqueued to
        ``recovered``; ``False`` when the lease was lost."""
        limit = self.options.page_size
        second, skip = int(start), 0
        read: set[str] = set()
        for _ in range(MAX_PAGES_PER_PASS):
            page = await self._page(stream, second, until, limit, skip)
            items = [(epoch(item.get("updated_at")), item) for item in page["items"]]
            listed = [(at, item) for at, item in items if at is not None and at <= until]
            changes = [c for c in (self._change(item, start) for _, item in listed) if c]
            keys = {change.key for change in changes}
            if keys and keys <= read:
                # A page of nothing but what this pass read already: an API that ignores
                # offset would have it read the same page until the page limit.
                log.warning(
                    "enricher %s: reconciliation of %s: the API repeated a page; stopped",
                    self.enricher,
                    stream,
                )
                return True
            read |= keys
            done = len(page["items"]) < limit or not page["has_more"]
            last = int(max((at for at, _ in listed), default=second))
            # The watermark moves with the changes it covers: to the page's last second while
            # pages remain (that second is read again: its changes are found seen), to the end
            # of the window once the list is read.
            committed = await feed.commit(stream, changes, until if done else float(last))
            if committed is None:
                return False
            recovered.extend(committed)
            if done:
                return True
            if not await feed.hold(stream, self.lease):
                return False
            if last == second:
                skip += len(page["items"])
            else:
                second, skip = last, sum(1 for at, _ in listed if int(at) == last)
        log.warning(
            "enricher %s: reconciliation of %s stopped after many pages", self.enricher, stream
        )
        return True

    async def _page(
        self, stream: str, second: int, until: float, limit: int, skip: int
    ) -> dict[str, Any]:
        end = "now" if self.options.delay == 0 else api_time(until)
        params = {
            "date[updated_at]": f"{api_time(second)},{end}",
            "sort": "updated_at",
            "direction": "asc",
            "limit": str(limit),
            "offset": str(skip),
        }
        if stream != ALL_COMMUNITIES:
            params["match[community_uuid]"] = stream
        answer = await self.api.get_object(LIST_PATH, params, "alert")
        items = answer.get("items")
        if not isinstance(items, list):
            raise SekoiaApiError("Sekoia.io API answered the alert list without items")
        return {
            "items": [item for item in items if isinstance(item, dict)],
            "has_more": answer.get("has_more", len(items) >= limit) is not False,
        }

    def _change(self, alert: dict[str, Any], start: float) -> ReconciledChange | None:
        key = change_key(alert)
        if key is None:
            return None
        uuid = alert["uuid"]
        updated = epoch(alert.get("updated_at")) or 0.0
        created = epoch(alert.get("created_at"))
        # New since the stream was last read: announced as new, even if updated since (its
        # "created" webhook was missed as well).
        action = "created" if created is not None and created >= int(start) else "updated"
        short_id = alert.get("short_id") if isinstance(alert.get("short_id"), str) else None
        attributes: dict[str, Any] = {"uuid": uuid}
        if short_id:
            attributes["short_id"] = short_id
        attributes.update(_summary(alert))
        event = {
            "type": "alert",
            "action": action,
            "attributes": attributes,
            "metadata": {
                "version": 2,
                "uuid": f"reconciled-{uuid}-{int(updated)}",
                "created_at": datetime.fromtimestamp(updated, UTC).isoformat(),
                "community_uuid": alert.get("community_uuid"),
                "reconciled": True,
                "updated_at": int(updated),
            },
        }
        return ReconciledChange(key=key, source="sekoia", event=event, label=short_id or uuid)


def _summary(alert: dict[str, Any]) -> dict[str, Any]:
    """The summary a webhook from the LiveAPI carries: the message still says something if
    the alert cannot be fetched again when the event is routed."""
    summary: dict[str, Any] = {}
    if isinstance(alert.get("title"), str):
        summary["title"] = alert["title"]
    status = alert.get("status")
    if isinstance(status, dict) and isinstance(status.get("name"), str):
        summary["status_name"] = status["name"]
    urgency = alert.get("urgency")
    if isinstance(urgency, dict) and isinstance(urgency.get("current_value"), int | float):
        summary["urgency_current_value"] = urgency["current_value"]
    rule = alert.get("rule")
    if isinstance(rule, dict) and isinstance(rule.get("name"), str):
        summary["rule_name"] = rule["name"]
    return summary
