"""Storm control, item 7: tenants (MSSPs). Communities by name, routes per community, an
enricher per community with its own API key, and the community in templates.

Through the real runtime on both backends; the Sekoia.io APIs of two tenants and the sinks
are loopback servers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from tests.backends import Backend
from tests.conftest import TOKEN
from tests.loopback import LoopbackServer
from tests.sekoia_fixtures import API_KEY, Failure, FakeSekoia, _json, alert_event, metadata
from tests.serving import serve
from tests.test_grouping import post

ACME = "d6cea089-0f36-46c4-a10a-0e4c2e20fb10"
GLOBEX = "6ffbe55b-d30a-4dc4-bc52-a213dce0af29"
UNNAMED = "cc93fe3f-c26b-4eb1-82f7-082209cf1892"
ACME_KEY = "sk-acme-0123456789abcdef-SECRET"


class TenantSekoia(FakeSekoia):
    """One tenant's Sekoia.io API: it answers only to that tenant's API key."""

    def __init__(self, server: LoopbackServer, key: str) -> None:
        super().__init__(server)
        self.key = key

    def _answer(
        self, request: web.Request, failure: Failure | None, body: bytes = b""
    ) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return _json(401, {"message": "Unauthorized"})
        found = self._lookup(request.path.split("/"))
        return _json(200, found) if found is not None else _json(404, {"message": "Not found"})


@pytest.fixture
async def apis() -> AsyncIterator[tuple[TenantSekoia, TenantSekoia]]:
    servers = [LoopbackServer(), LoopbackServer()]
    for server in servers:
        await server.start()
    yield TenantSekoia(servers[0], ACME_KEY), TenantSekoia(servers[1], API_KEY)
    for server in servers:
        await server.stop()


def alert_of(community: str, n: int) -> dict[str, Any]:
    return alert_event() | {"metadata": metadata(community_uuid=community, uuid=f"m{n}")}


def config(backend: Backend, acme: str, globex: str, acme_api: str, globex_api: str) -> str:
    return f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
queue: {backend.yaml()}
delivery: {{backoff_initial: 50ms, backoff_max: 200ms}}
server: {{access_log: false}}
communities:
  acme: {ACME}
  globex: {GLOBEX.upper()}
enrichers:
  sekoia-acme:
    {{type: sekoia, api_key: {ACME_KEY}, base_url: "{acme_api}", region: fra1, attempts: 1}}
  sekoia-globex:
    {{type: sekoia, api_key: {API_KEY}, base_url: "{globex_api}", region: usa1, attempts: 1}}
sinks:
  acme: {{type: webhook, url: "{acme}"}}
  globex: {{type: webhook, url: "{globex}"}}
routes:
  - name: acme
    match: {{type: alert, community: acme}}
    enrich: [sekoia-acme]
    sinks: [acme]
    title: "[{{{{ community }}}}] {{{{ message.title }}}}"
  - name: globex-and-unnamed
    match: {{type: alert, community: [globex, {UNNAMED}]}}
    enrich: [sekoia-globex]
    sinks: [globex]
    title: "[{{{{ community }}}} {{{{ community_uuid }}}}] {{{{ alert.rule.name }}}}"
"""


async def test_each_tenant_gets_only_its_events_enriched_with_its_own_api_key(
    queue_backend: Backend,
    write_config: Callable[..., Path],
    apis: tuple[TenantSekoia, TenantSekoia],
) -> None:
    acme_api, globex_api = apis
    acme, globex = LoopbackServer(), LoopbackServer()
    await acme.start()
    await globex.start()
    try:
        path = write_config(
            config(queue_backend, acme.url, globex.url, acme_api.url, globex_api.url)
        )
        async with serve(path) as served:
            await post(served.url, [alert_of(ACME, 1), alert_of(ACME, 2)])
            await post(served.url, [alert_of(GLOBEX, 3), alert_of(UNNAMED, 4)])
            await post(served.url, [alert_of("0d1c4f2b-0000-4000-8000-000000000000", 5)])
            await acme.wait_for(2, timeout=15)
            await globex.wait_for(2, timeout=15)
    finally:
        await acme.stop()
        await globex.stop()
    # Each tenant's route took its own events only (the fifth, of an unknown tenant, none).
    assert len(acme.requests) == 2
    assert len(globex.requests) == 2
    assert {r.json()["event"]["metadata"]["community_uuid"] for r in acme.requests} == {ACME}
    assert {r.json()["event"]["metadata"]["community_uuid"] for r in globex.requests} == {
        GLOBEX,
        UNNAMED,
    }
    # Templates see the configured name (the uuid when unnamed) and the uuid.
    assert all(r.json()["title"].startswith("[acme] ") for r in acme.requests)
    titles = sorted(r.json()["title"] for r in globex.requests)
    # The alert's rule comes from the API: globex's key fetched it from globex's API.
    assert titles == sorted(
        [
            f"[globex {GLOBEX}] PowerShell web download",
            f"[{UNNAMED} {UNNAMED}] PowerShell web download",
        ]
    )
    # Each enricher called only its tenant's API, with its tenant's key: never the other's.
    assert acme_api.server.requests and globex_api.server.requests
    assert {r.headers["Authorization"] for r in acme_api.server.requests} == {f"Bearer {ACME_KEY}"}
    assert {r.headers["Authorization"] for r in globex_api.server.requests} == {f"Bearer {API_KEY}"}


def test_communities_and_community_matchers_are_checked_with_their_position(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
communities:
  acme: {ACME}
  again: {ACME}
sinks: {{a: {{type: log}}}}
routes:
  - {{name: one, match: {{community: initech}}, sinks: [a]}}
  - {{name: two, match: {{community: [acme, "12"]}}, sinks: [a]}}
  - {{name: any, match: {{community: "*"}}, sinks: [a]}}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = [str(p).removeprefix(f"{path}:") for p in caught.value.problems]
    assert problems == [
        "4:10: communities.again: same uuid as community 'acme'",
        "7:36: routes.one.match.community: unknown community 'initech' "
        "(a name from communities: acme, again; or a uuid)",
        "8:43: routes.two.match.community: unknown community '12' "
        "(a name from communities: acme, again; or a uuid)",
    ]


def test_a_community_that_is_not_a_uuid_is_one_error_at_its_place(
    write_config: Callable[..., Path],
) -> None:
    path = write_config(
        f"""
hooks: [{{name: sekoia, token: {TOKEN}}}]
communities: {{acme: {ACME}, globex: not-a-uuid}}
sinks: {{a: {{type: log}}}}
routes: [{{name: one, match: {{community: globex}}, sinks: [a]}}]
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = [str(p).removeprefix(f"{path}:") for p in caught.value.problems]
    assert problem == (
        "2:67: communities.globex: Value error, expected a community uuid such as "
        "d6cea089-0f36-46c4-a10a-0e4c2e20fb10"
    )
