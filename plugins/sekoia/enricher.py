"""The ``sekoia`` enricher: fetch the alert, comment or case a thin webhook event points at.

Variables it provides (merged into the template context):

- ``alert``: the alert from ``GET /v1/sic/alerts/{uuid}`` (alert and alert-comment events),
  with STIX, comments, history, countermeasures and cases switched off;
- ``previous_alert``: the copy fetched before this one, when still remembered (for "40 -> 80");
- ``comment``: the comment from ``GET /v1/sic/alerts/{uuid}/comments/{uuid}``;
- ``case`` and ``previous_case``: the case from ``GET /v1/sic/cases/{uuid}``;
- ``sekoia``: UI links (``app_url``, ``alert_url``, ``case_url``, ``object_url``), provided
  even when the API fails, so a degraded message still links to the alert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from notirouter import (
    AlertWriter,
    ChangeFeed,
    ChatAction,
    Enricher,
    EnricherContext,
    EnrichmentError,
    Event,
    SendResult,
    hookimpl,
)

from .cache import Fetched, FlightCache
from .circuit import Circuit
from .client import AuthReport, RetrySettings, SekoiaApi, SekoiaApiError
from .options import SekoiaOptions
from .places import Links, alert_short_id, path_segment, valid_stix_id, valid_uuid
from .reconcile import AlertReconciler, change_key
from .source import SekoiaEventBase
from .write_back import WriteBack

log = logging.getLogger("notirouter.plugins.sekoia")
ALERT_PARAMS = {
    "stix": "false",
    "comments": "false",
    "history": "false",
    "countermeasures": "false",
    "cases": "false",
}


class SekoiaEnricher(Enricher[SekoiaOptions], AlertWriter):
    """Fetches alerts, comments and cases from the Sekoia.io API (see the module docstring),
    and writes chat actions back (:mod:`.write_back`)."""

    type_name = "sekoia"
    Options = SekoiaOptions

    def __init__(self, name: str, options: SekoiaOptions, context: EnricherContext) -> None:
        super().__init__(name, options, context)
        self.api = SekoiaApi(
            context.http,
            base=options.api_base,
            api_key=options.api_key,
            retry=RetrySettings(
                attempts=options.attempts,
                timeout=options.timeout,
                backoff_initial=options.backoff_initial,
                backoff_max=options.backoff_max,
                max_wait=options.retry_wait_max,
                deadline=options.deadline,
            ),
            auth_report=AuthReport(name, options.auth_log_interval),
            auth_pause=options.auth_pause,
            circuit=Circuit(
                name,
                threshold=options.circuit_failures,
                cooldown=options.circuit_cooldown,
                cooldown_max=options.circuit_cooldown_max,
                on_change=context.report_health,
            ),
        )
        self.cache = FlightCache(ttl=options.cache_ttl, max_entries=options.cache_size)
        self.links = Links(options.app_base, options.case_link)
        self.write_back = WriteBack(self.api)

    async def change_status(self, alert: str, action: ChatAction, comment: str) -> SendResult:
        """Apply the workflow action named like ``action`` to ``alert``."""
        return await self.write_back.change_status(alert, action, comment)

    async def add_comment(self, alert: str, content: str, author: str) -> SendResult:
        """Comment on ``alert`` as ``author``."""
        return await self.write_back.add_comment(alert, content, author)

    async def write_access(self) -> str | None:
        """Whether the key may write, as far as ``GET /v1/me`` tells."""
        return await self.write_back.write_access()

    def status(self) -> Mapping[str, Any]:
        """The cache (size, hits, misses) and the circuit breaker's state, for ``status``."""
        return {"cache": self.cache.status(), "circuit": self.api.circuit.status()}

    async def aclose(self) -> None:
        """Cancel API calls still in flight."""
        await self.cache.aclose()

    async def reconcile(self, feed: ChangeFeed) -> None:
        """With ``reconcile:``, poll the alert list for changes no webhook delivered."""
        settings = self.options.reconcile
        if settings is None:
            return
        communities = settings.communities or self.options.communities or []
        await AlertReconciler(self.name, self.api, settings, communities).run(feed)

    def change_key(self, event: Event, variables: Mapping[str, Any]) -> str | None:
        """For an ``alert`` created/updated webhook: the alert's uuid and ``updated_at`` as
        fetched, the key reconciliation gives the same change (with ``reconcile:`` only)."""
        if self.options.reconcile is None or not isinstance(event, SekoiaEventBase):
            return None
        if event.type != "alert" or event.action not in ("created", "updated"):
            return None
        if (event.metadata.model_extra or {}).get("reconciled") is True:
            return None  # its key was claimed when reconciliation enqueued it
        enrichment = variables.get("enrichment")
        return change_key(enrichment.get("alert")) if isinstance(enrichment, dict) else None

    async def enrich(self, event: Event) -> Mapping[str, Any]:
        """Variables for ``event``; ``{}`` for events this enricher does not handle."""
        if not isinstance(event, SekoiaEventBase):
            return {}
        communities = self.options.communities
        if communities is not None and event.metadata.community_uuid not in communities:
            return {}
        not_before = self._not_before(event)
        attributes = event.attribute_data()
        if event.type == "alert":
            return await self._alert_event(event.action, attributes, not_before)
        if event.type == "alert-comment":
            return await self._comment_event(attributes, not_before)
        if event.type == "case":
            return await self._case_event(attributes, not_before)
        if event.type == "content-proposal":
            return {"sekoia": self._report_links(attributes)}
        return {}

    def _not_before(self, event: SekoiaEventBase) -> float | None:
        """The oldest fetch start whose copy may serve ``event`` (``None``: any in the TTL).

        Measured on this machine's clock, from when the enricher sees the event: the event's
        ``metadata.created_at`` is Sekoia.io's clock, and any skew between the two would make
        the cache never hit, or serve a copy fetched before the event. The event happened
        before it was seen, so a fetch started since then shows it; ``cache_window`` widens
        that a little, so that a storm of events about one alert shares one request.
        The copy of an object that the event says was created cannot be from before its
        creation: any copy within the TTL will do.
        """
        if event.action == "created" and event.type in ("alert", "case"):
            return None
        return self.cache.now() - self.options.cache_window

    async def _alert_event(
        self, action: str, attributes: dict[str, Any], not_before: float | None
    ) -> dict[str, Any]:
        links = self._links(alert_url=self.links.alert(attributes.get("short_id")))
        if action == "deleted":
            return {"sekoia": links}  # the alert is gone: fetching it could only answer 404
        ref = valid_uuid(attributes.get("uuid")) or alert_short_id(attributes.get("short_id"))
        fetched = await self._fetch_alert(ref, not_before, links)
        return self._alert_variables(fetched, links)

    async def _comment_event(
        self, attributes: dict[str, Any], not_before: float | None
    ) -> dict[str, Any]:
        links = self._links(alert_url=self.links.alert(attributes.get("alert_short_id")))
        ref = valid_uuid(attributes.get("alert_uuid")) or alert_short_id(
            attributes.get("alert_short_id")
        )
        comment_uuid = valid_uuid(attributes.get("uuid"))
        if ref is None or comment_uuid is None or not self.options.fetch_comments:
            return self._alert_variables(await self._fetch_alert(ref, not_before, links), links)
        path = f"/v1/sic/alerts/{path_segment(ref)}/comments/{path_segment(comment_uuid)}"
        alert, comment = await asyncio.gather(
            self._fetch_alert(ref, not_before, links),
            self.api.get_object(path, {}, "comment"),
            return_exceptions=True,
        )
        if isinstance(alert, BaseException):
            raise alert
        variables = self._alert_variables(alert, links)
        if isinstance(comment, SekoiaApiError):
            # The webhook carries the comment's text and author id: the message can do without.
            # A refused key is already reported once per period: not once per event as well.
            level = logging.DEBUG if comment.reported else logging.INFO
            log.log(level, "enricher %s: comment not fetched: %s", self.name, comment)
        elif isinstance(comment, BaseException):
            raise comment
        else:
            variables["comment"] = comment
        return variables

    async def _fetch_alert(
        self, ref: str | None, not_before: float | None, links: dict[str, str]
    ) -> Fetched:
        if ref is None:
            raise EnrichmentError(
                "the event carries no valid alert uuid or short id", partial={"sekoia": links}
            )
        path = "/v1/sic/alerts/" + path_segment(ref)
        try:
            return await self.cache.get(
                ("alert", ref),
                lambda: self.api.get_object(path, ALERT_PARAMS, "alert"),
                not_before=not_before,
            )
        except SekoiaApiError as exc:
            raise _failed(exc, links) from None

    def _alert_variables(self, fetched: Fetched, links: dict[str, str]) -> dict[str, Any]:
        alert_url = self.links.alert(fetched.value.get("short_id"))
        if alert_url:
            links = {**links, "alert_url": alert_url}
        variables: dict[str, Any] = {"alert": fetched.value, "sekoia": links}
        if fetched.previous is not None:
            variables["previous_alert"] = fetched.previous
        return variables

    async def _case_event(
        self, attributes: dict[str, Any], not_before: float | None
    ) -> dict[str, Any]:
        uuid = valid_uuid(attributes.get("uuid"))
        links = self._links(case_url=self.links.case(attributes.get("short_id"), uuid))
        if uuid is None:
            # Whether the Case API takes a short id is undocumented: only a UUID is used.
            raise EnrichmentError("the event carries no valid case uuid", partial={"sekoia": links})
        path = "/v1/sic/cases/" + path_segment(uuid)
        try:
            fetched = await self.cache.get(
                ("case", uuid), lambda: self.api.get_object(path, {}, "case"), not_before=not_before
            )
        except SekoiaApiError as exc:
            raise _failed(exc, links) from None
        case_url = self.links.case(fetched.value.get("short_id"), uuid)
        variables: dict[str, Any] = {"case": fetched.value, "sekoia": links}
        if case_url:
            variables["sekoia"] = {**links, "case_url": case_url}
        if fetched.previous is not None:
            variables["previous_case"] = fetched.previous
        return variables

    def _report_links(self, attributes: dict[str, Any]) -> dict[str, str]:
        # The content-proposal payload is undocumented: link to the first STIX id it carries.
        stix_ids = (valid_stix_id(value) for value in attributes.values())
        return self._links(
            object_url=self.links.intelligence_object(next(filter(None, stix_ids), None))
        )

    def _links(self, **links: str | None) -> dict[str, str]:
        return {"app_url": self.links.app_url, **{k: v for k, v in links.items() if v}}


def _failed(error: SekoiaApiError, links: dict[str, str]) -> EnrichmentError:
    # A refused key (logged once per period) or an open circuit (logged when it opened) is
    # already reported by the client: not again per event.
    return EnrichmentError(str(error), partial={"sekoia": links}, reported=error.reported)


@hookimpl
def register_enrichers(register: Callable[[type[Enricher[Any]]], None]) -> None:
    """Provide the ``sekoia`` enricher."""
    register(SekoiaEnricher)
