"""The ``sekoia`` enricher against a loopback server playing the Sekoia.io API."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from notirouter.api.enricher import Enricher, EnricherContext, EnrichmentError
from notirouter.api.events import Event
from notirouter.api.http import HttpClient
from notirouter.api.manager import collect_types, make_plugin_manager
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import (
    ALERT_SHORT_ID,
    ALERT_UUID,
    API_KEY,
    CASE_UUID,
    COMMENT_UUID,
    Failure,
    FakeSekoia,
    alert_event,
    case_event,
    comment_event,
    metadata,
)

FAST = {"backoff_initial": 0.001, "backoff_max": 0.005}
ALERT_URL = f"https://app.sekoia.io/operations/alerts/{ALERT_SHORT_ID}"


@pytest.fixture
async def sekoia() -> AsyncIterator[FakeSekoia]:
    server = LoopbackServer()
    await server.start()
    yield FakeSekoia(server)
    await server.stop()


@pytest.fixture
def build(http_client: HttpClient, sekoia: FakeSekoia) -> Callable[..., Enricher[Any]]:
    """A ``sekoia`` enricher, registered and validated as the config would do it."""
    cls = collect_types(make_plugin_manager()).enrichers["sekoia"]

    def make(**options: Any) -> Enricher[Any]:
        raw = {
            "type": "sekoia",
            "api_key": API_KEY,
            "base_url": sekoia.url,
            "region": "fra1",
            **FAST,
            **options,
        }
        validated = cls.Options.model_validate(raw)
        return cls("sekoia", validated, EnricherContext(name="sekoia", http=http_client))

    return make


SOURCE = collect_types(make_plugin_manager()).sources["sekoia"]()


def parse(payload: dict[str, Any]) -> Event:
    return SOURCE.parse(payload)


async def test_fetches_the_alert_with_bearer_key_and_light_flags(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    variables = await build().enrich(parse(alert_event()))
    assert variables["alert"]["status"]["name"] == "Pending"
    assert variables["sekoia"] == {"app_url": "https://app.sekoia.io", "alert_url": ALERT_URL}
    request = sekoia.server.requests[0]
    assert request.method == "GET"
    assert request.path == f"/v1/sic/alerts/{ALERT_UUID}"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    flags = dict(pair.split("=") for pair in request.query.split("&"))
    assert flags == {
        "stix": "false",
        "comments": "false",
        "history": "false",
        "countermeasures": "false",
        "cases": "false",
    }


@pytest.mark.parametrize(
    "crafted",
    ["../../v1/apikeys", "..%2F..%2Fv1%2Fapikeys", "x/../../v1/me", "ALabc?x=1", " ALabc", "a\nb"],
)
async def test_crafted_ids_never_reach_another_endpoint(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, crafted: str
) -> None:
    enricher = build()
    # A crafted uuid with a valid short id: the short id is used, on the alert endpoint.
    variables = await enricher.enrich(parse(alert_event(uuid=crafted)))
    assert variables["alert"]["uuid"] == ALERT_UUID
    # Both ids crafted: nothing is requested at all, and the message degrades.
    with pytest.raises(EnrichmentError, match="no valid alert uuid or short id"):
        await enricher.enrich(parse(alert_event(uuid=crafted, short_id=crafted)))
    with pytest.raises(EnrichmentError):
        await enricher.enrich(parse(case_event(uuid=crafted)))
    assert sekoia.paths == [f"/v1/sic/alerts/{ALERT_SHORT_ID}"]


@pytest.mark.parametrize("word", ["search", "count", "ALabc", "al0123456789", "AL" + "x" * 31])
async def test_a_short_id_is_used_in_a_path_only_with_the_alert_short_id_shape(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, word: str
) -> None:
    # "search" is a word, not an id: /v1/sic/alerts/search is another endpoint of the API.
    with pytest.raises(EnrichmentError, match="no valid alert uuid or short id"):
        await build().enrich(parse(alert_event(uuid="not-a-uuid", short_id=word)))
    event = comment_event()
    event["attributes"].update(alert_uuid="not-a-uuid", alert_short_id=word)
    with pytest.raises(EnrichmentError, match="no valid alert uuid or short id"):
        await build().enrich(parse(event))
    assert sekoia.paths == []


async def test_fifty_concurrent_events_for_one_alert_make_one_call(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.delay = 0.05  # the first call is still in flight when the others ask
    enricher = build()
    events = [parse(alert_event("updated", updated={"similar": n})) for n in range(50)]
    results = await asyncio.gather(*(enricher.enrich(event) for event in events))
    assert len(sekoia.paths) == 1
    assert all(r["alert"]["short_id"] == ALERT_SHORT_ID for r in results)


async def test_cache_serves_later_events_until_the_object_changes(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(cache_ttl=60, cache_window=0)
    await enricher.enrich(parse(alert_event()))
    await enricher.enrich(parse(alert_event()))  # created: no copy can predate the creation
    assert len(sekoia.paths) == 1
    # An update seen after our copy was fetched: fetch again, keep the old copy.
    sekoia.alerts[ALERT_UUID]["urgency"] = {"current_value": 80, "display": "Urgent"}
    later = alert_event("updated", updated={"dynamic_urgency_value": 80})
    variables = await enricher.enrich(parse(later))
    assert len(sekoia.paths) == 2
    assert variables["alert"]["urgency"]["current_value"] == 80
    assert variables["previous_alert"]["urgency"]["current_value"] == 60


def stamped(event: dict[str, Any], created_at: str) -> dict[str, Any]:
    """``event`` with Sekoia.io's timestamp ``created_at`` (from Sekoia.io's clock)."""
    event["metadata"] = metadata(created_at=created_at)
    return event


async def test_a_sekoia_clock_ahead_of_ours_does_not_defeat_the_cache(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    # Sekoia.io's clock far ahead of ours: its timestamps are not compared with our times.
    enricher = build(cache_ttl=60, cache_window="1m")
    for n in range(3):
        update = alert_event("updated", updated={"similar": 4 + n})
        await enricher.enrich(parse(stamped(update, "2999-01-01T00:00:00+00:00")))
    assert len(sekoia.paths) == 1


async def test_a_sekoia_clock_behind_ours_never_serves_a_copy_from_before_the_event(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(cache_ttl=3600, cache_window="20ms")
    update = alert_event("updated", updated={"similar": 4})
    await enricher.enrich(parse(stamped(update, "2001-01-01T00:00:00+00:00")))
    await asyncio.sleep(0.05)
    # The alert changes, then an update about it arrives, stamped by a clock years behind:
    # by that stamp, our copy (fetched before the change) would look newer than the event.
    sekoia.alerts[ALERT_UUID]["status"] = {"name": "Acknowledged"}
    update = alert_event("updated", updated={"status_name": "Acknowledged"})
    variables = await enricher.enrich(parse(stamped(update, "2001-01-01T00:00:01+00:00")))
    assert variables["alert"]["status"] == {"name": "Acknowledged"}
    assert len(sekoia.paths) == 2


async def test_an_update_does_not_join_a_fetch_started_before_it(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(cache_ttl=60, cache_window="20ms")
    sekoia.delay = 0.3  # the first request is answered late, with the state at its arrival
    first = asyncio.create_task(enricher.enrich(parse(alert_event())))
    await asyncio.sleep(0.1)  # the first fetch is under way
    sekoia.alerts[ALERT_UUID]["status"] = {"name": "Acknowledged"}
    sekoia.delay = 0.0
    update = alert_event("updated", updated={"status_name": "Acknowledged"})
    variables = await enricher.enrich(parse(stamped(update, "2999-01-01T00:00:00+00:00")))
    assert variables["alert"]["status"] == {"name": "Acknowledged"}
    assert (await first)["alert"]["status"]["name"] == "Pending"
    assert len(sekoia.paths) == 2
    # The earlier fetch finished last, but the cache keeps the copy of the later one.
    variables = await enricher.enrich(parse(alert_event()))
    assert variables["alert"]["status"] == {"name": "Acknowledged"}
    assert len(sekoia.paths) == 2


async def test_cache_ttl_zero_fetches_every_time(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(cache_ttl=0)
    await enricher.enrich(parse(alert_event()))
    await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 2


async def test_cache_size_is_bounded(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(cache_size=3)
    for n in range(10):
        short_id = f"ALcache{n:04d}"
        sekoia.alerts[short_id] = {"uuid": ALERT_UUID, "short_id": short_id}
        await enricher.enrich(parse(alert_event(uuid=None, short_id=short_id)))
    assert len(enricher.cache) == 3  # type: ignore[attr-defined]


async def test_retries_5xx_then_succeeds(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(500, times=1), Failure(503, times=1))
    variables = await build().enrich(parse(alert_event()))
    assert variables["alert"]["uuid"] == ALERT_UUID
    assert len(sekoia.paths) == 3


async def test_429_honours_retry_after(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(429, times=1, headers={"Retry-After": "0.2"}))
    started = time.monotonic()
    variables = await build().enrich(parse(alert_event()))
    assert variables["alert"]["uuid"] == ALERT_UUID
    assert len(sekoia.paths) == 2
    # Backoff alone would wait at most 5 ms: the wait came from Retry-After.
    assert time.monotonic() - started >= 0.2


async def test_retry_after_beyond_the_bound_gives_up_at_once(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(429, headers={"Retry-After": "3600"}))
    with pytest.raises(EnrichmentError, match="retry_wait_max") as caught:
        await build(retry_wait_max=5).enrich(parse(alert_event()))
    assert len(sekoia.paths) == 1
    assert caught.value.partial == {
        "sekoia": {"app_url": "https://app.sekoia.io", "alert_url": ALERT_URL}
    }


async def test_outage_fails_after_bounded_attempts_with_the_link_as_partial(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(500))
    with pytest.raises(EnrichmentError, match=r"unavailable after 3 attempts: HTTP 500") as caught:
        await build(attempts=3).enrich(parse(alert_event()))
    assert len(sekoia.paths) == 3
    assert caught.value.partial["sekoia"]["alert_url"] == ALERT_URL


async def test_slow_answers_time_out_and_are_retried(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(200, delay=0.4))
    with pytest.raises(EnrichmentError, match=r"no answer within 0\.1s"):
        await build(timeout=0.1, attempts=2).enrich(parse(alert_event()))
    assert len(sekoia.paths) == 2


async def test_404_is_final(build: Callable[..., Enricher[Any]], sekoia: FakeSekoia) -> None:
    missing = "0a0a0a0a-0000-4000-8000-000000000000"
    with pytest.raises(EnrichmentError, match=r"alert not found in Sekoia.io \(HTTP 404\)"):
        await build().enrich(parse(alert_event(uuid=missing)))
    assert sekoia.paths == [f"/v1/sic/alerts/{missing}"]


async def test_401_is_reported_once_per_period_and_never_shows_the_key(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    enricher = build(api_key="wrong-key-ABCDEFGH", auth_pause=0)
    for _ in range(20):
        with pytest.raises(EnrichmentError, match=r"key rejected \(HTTP 401\)"):
            await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 20  # no retries on 401
    reports = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(reports) == 1
    assert "missing, expired or invalid" in reports[0].getMessage()
    assert "wrong-key-ABCDEFGH" not in caplog.text


async def test_auth_failure_pauses_calls(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(api_key="wrong-key-ABCDEFGH", auth_pause=60)
    for _ in range(5):
        with pytest.raises(EnrichmentError, match="401"):
            await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 1


async def test_403_names_the_missing_permission(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, caplog: pytest.LogCaptureFixture
) -> None:
    sekoia.fail(Failure(403))
    with pytest.raises(EnrichmentError, match=r"may not read alerts \(HTTP 403\)"):
        await build().enrich(parse(alert_event()))
    assert "SIC_READ_ALERT" in caplog.text
    assert len(sekoia.paths) == 1


async def test_a_403_on_comments_pauses_comments_only(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, caplog: pytest.LogCaptureFixture
) -> None:
    sekoia.refuse["comment"] = 403
    enricher = build(auth_pause=60, cache_ttl=0)  # every event asks the API for the alert
    variables = await enricher.enrich(parse(comment_event()))
    assert variables["alert"]["short_id"] == ALERT_SHORT_ID
    assert "comment" not in variables
    # The key may still read alerts: the next alert event is enriched, from a new call.
    variables = await enricher.enrich(parse(alert_event("updated", updated={"similar": 4})))
    assert variables["alert"]["uuid"] == ALERT_UUID
    comment_path = f"/v1/sic/alerts/{ALERT_UUID}/comments/{COMMENT_UUID}"
    assert sekoia.paths.count(f"/v1/sic/alerts/{ALERT_UUID}") == 2
    # Comments stay paused: a second comment event asks for the alert only.
    await enricher.enrich(parse(comment_event()))
    assert sekoia.paths.count(comment_path) == 1
    assert sekoia.paths.count(f"/v1/sic/alerts/{ALERT_UUID}") == 3
    reports = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(reports) == 1
    assert "read alert comments (HTTP 403" in reports[0]
    assert "SIC_READ_ALERT" not in reports[0]
    assert "fetch_comments: false" in reports[0]


async def test_a_403_on_cases_leaves_alerts_alone(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, caplog: pytest.LogCaptureFixture
) -> None:
    sekoia.refuse["case"] = 403
    enricher = build(auth_pause=60)
    with pytest.raises(EnrichmentError, match=r"may not read cases \(HTTP 403\)"):
        await enricher.enrich(parse(case_event()))
    with pytest.raises(EnrichmentError, match=r"may not read cases \(HTTP 403\)"):
        await enricher.enrich(parse(case_event("updated")))
    assert (await enricher.enrich(parse(alert_event())))["alert"]["uuid"] == ALERT_UUID
    assert sekoia.paths == [f"/v1/sic/cases/{CASE_UUID}", f"/v1/sic/alerts/{ALERT_UUID}"]
    reports = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(reports) == 1
    assert "read cases (HTTP 403" in reports[0]
    assert "SIC_READ_ALERT" not in reports[0]


async def test_a_401_anywhere_pauses_every_endpoint(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    # A 401 means the key itself is bad: no endpoint would take it.
    sekoia.refuse["case"] = 401
    enricher = build(auth_pause=60)
    with pytest.raises(EnrichmentError, match=r"key rejected \(HTTP 401\)"):
        await enricher.enrich(parse(case_event()))
    with pytest.raises(EnrichmentError, match=r"key rejected \(HTTP 401\)"):
        await enricher.enrich(parse(alert_event()))
    assert sekoia.paths == [f"/v1/sic/cases/{CASE_UUID}"]


async def test_comment_event_fetches_the_alert_and_the_comment(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    variables = await build().enrich(parse(comment_event()))
    assert variables["alert"]["short_id"] == ALERT_SHORT_ID
    assert variables["comment"]["author"] == "Alice Martin"
    assert sorted(sekoia.paths) == [
        f"/v1/sic/alerts/{ALERT_UUID}",
        f"/v1/sic/alerts/{ALERT_UUID}/comments/{COMMENT_UUID}",
    ]


async def test_comment_fetch_failure_keeps_the_alert(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.comments.clear()
    variables = await build().enrich(parse(comment_event()))
    assert variables["alert"]["short_id"] == ALERT_SHORT_ID
    assert "comment" not in variables


async def test_case_event_fetches_the_case(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    variables = await build().enrich(parse(case_event("alerts-updated")))
    assert variables["case"]["title"] == "Ransomware precursor on Paris HQ"
    assert variables["sekoia"]["case_url"] == "https://app.sekoia.io/operations/cases/CAmDUb2Anct1e"
    assert sekoia.paths == [f"/v1/sic/cases/{CASE_UUID}"]


async def test_deleted_alerts_and_unknown_types_make_no_call(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build()
    deleted = await enricher.enrich(parse(alert_event("deleted")))
    assert deleted == {"sekoia": {"app_url": "https://app.sekoia.io", "alert_url": ALERT_URL}}
    other = {"type": "intake", "action": "silent", "attributes": {"uuid": ALERT_UUID}}
    assert await enricher.enrich(parse(other)) == {}
    report = {
        "type": "content-proposal",
        "action": "created",
        "attributes": {"id": "report--" + CASE_UUID},
    }
    links = await enricher.enrich(parse(report))
    assert (
        links["sekoia"]["object_url"]
        == f"https://app.sekoia.io/intelligence/objects/report--{CASE_UUID}"
    )
    assert sekoia.paths == []


async def test_other_communities_are_left_alone(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(communities=["11111111-1111-4111-8111-111111111111"])
    assert await enricher.enrich(parse(alert_event())) == {}
    assert sekoia.paths == []


async def test_links_follow_the_region(http_client: HttpClient) -> None:
    cls = collect_types(make_plugin_manager()).enrichers["sekoia"]
    options = cls.Options.model_validate(
        {"type": "sekoia", "api_key": API_KEY, "base_url": "https://app.fra2.sekoia.io/api"}
    )
    enricher = cls("s", options, EnricherContext(name="s", http=http_client))
    variables = await enricher.enrich(parse(alert_event("deleted")))
    assert variables["sekoia"]["alert_url"] == (
        f"https://app.fra2.sekoia.io/operations/alerts/{ALERT_SHORT_ID}"
    )


async def test_deadline_bounds_the_whole_fetch(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(200, delay=0.4))
    with pytest.raises(EnrichmentError, match=r"unavailable after [12] attempts?: no answer"):
        await build(timeout=0.2, attempts=10, deadline=0.3).enrich(parse(alert_event()))
    assert 1 <= len(sekoia.paths) <= 2  # not 10: the deadline ended the retries


async def test_an_outage_opens_the_circuit_and_an_answer_closes_it(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia, caplog: pytest.LogCaptureFixture
) -> None:
    sekoia.fail(Failure(500))
    enricher = build(attempts=1, circuit_failures=3, circuit_cooldown="50ms", cache_ttl=0)
    for _ in range(3):
        with pytest.raises(EnrichmentError, match=r"unavailable after 1 attempt: HTTP 500"):
            await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 3
    # Open: events fail fast, with the link, and the API is not called.
    for _ in range(10):
        with pytest.raises(EnrichmentError, match=r"unavailable \(circuit open\)") as caught:
            await enricher.enrich(parse(alert_event()))
        assert caught.value.partial["sekoia"]["alert_url"] == ALERT_URL
        assert caught.value.reported  # logged once when it opened, not per event
    with pytest.raises(EnrichmentError, match=r"circuit open"):
        await enricher.enrich(parse(case_event()))  # every endpoint: the API is down
    assert len(sekoia.paths) == 3
    # The API is back: after the cool-down one call probes it, and closes the circuit.
    sekoia.fail()
    await asyncio.sleep(0.1)
    assert (await enricher.enrich(parse(alert_event())))["alert"]["uuid"] == ALERT_UUID
    assert (await enricher.enrich(parse(case_event())))["case"]["uuid"] == CASE_UUID
    assert len(sekoia.paths) == 5
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) == 2
    assert "circuit open" in loud[0] and "3 requests in a row failed" in loud[0]
    assert "circuit closed" in loud[1]


async def test_a_hanging_api_opens_the_circuit(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(200, delay=0.3))
    enricher = build(timeout=0.05, attempts=2, circuit_failures=2, circuit_cooldown="1m")
    with pytest.raises(EnrichmentError, match=r"no answer within"):
        await enricher.enrich(parse(alert_event()))
    for _ in range(5):
        with pytest.raises(EnrichmentError, match=r"circuit open"):
            await enricher.enrich(parse(comment_event()))
    assert len(sekoia.paths) == 2


async def test_the_circuit_stops_the_retries_of_a_fetch_under_way(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    # The threshold is reached within one fetch: its remaining attempts are not made.
    sekoia.fail(Failure(503))
    enricher = build(attempts=10, circuit_failures=3)
    with pytest.raises(EnrichmentError, match=r"circuit open"):
        await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 3


async def test_a_failed_probe_keeps_the_circuit_open(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    sekoia.fail(Failure(500))
    enricher = build(attempts=3, circuit_failures=2, circuit_cooldown="50ms", cache_ttl=0)
    with pytest.raises(EnrichmentError, match=r"circuit open"):
        await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 2
    await asyncio.sleep(0.1)
    # One request probes; it fails: the fetch ends there, and the circuit stays open.
    with pytest.raises(EnrichmentError, match=r"circuit open"):
        await enricher.enrich(parse(alert_event()))
    with pytest.raises(EnrichmentError, match=r"circuit open"):
        await enricher.enrich(parse(alert_event()))
    assert len(sekoia.paths) == 3


async def test_api_errors_that_are_answers_do_not_open_the_circuit(
    build: Callable[..., Enricher[Any]], sekoia: FakeSekoia
) -> None:
    enricher = build(attempts=1, circuit_failures=2, cache_ttl=0)
    missing = "0a0a0a0a-0000-4000-8000-000000000000"
    for _ in range(2):
        sekoia.fail(Failure(500, times=1))
        with pytest.raises(EnrichmentError, match="HTTP 500"):
            await enricher.enrich(parse(alert_event()))
        # A 404 is an answer: the API is up, and the count of failures in a row starts over.
        with pytest.raises(EnrichmentError, match="404"):
            await enricher.enrich(parse(alert_event(uuid=missing)))
    assert (await enricher.enrich(parse(alert_event())))["alert"]["uuid"] == ALERT_UUID
    assert len(sekoia.paths) == 5
