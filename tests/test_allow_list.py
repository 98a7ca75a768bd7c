"""``hooks[].allow`` and ``server.trusted_proxies``: who may post, through the real receiver.

Every request comes from 127.0.0.1 (tests send nowhere else); other senders, IPv6 ones
included, arrive the way a reverse proxy on this machine forwards them: in X-Forwarded-For.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config
from notirouter.ingest.allow_list import client_address
from tests.conftest import TOKEN
from tests.serving import Served, serve

EVENT = {"type": "alert", "action": "created", "metadata": {"uuid": "m1"}}


def config(db: Path, allow: str, server: str = "") -> str:
    return f"""
server: {{max_body_bytes: 1024 {server}}}
hooks:
  - {{name: sekoia, token: {TOKEN}, allow: {allow}}}
queue: {{path: "{db}"}}
sinks:
  out: {{type: log}}
routes:
  - {{name: all, sinks: [out]}}
"""


async def post(
    served: Served, forwarded_for: list[str] | None = None, token: str = TOKEN
) -> tuple[int, dict[str, str], bytes]:
    headers = [("X-Forwarded-For", value) for value in forwarded_for or []]
    async with (
        aiohttp.ClientSession() as client,
        client.post(f"{served.url}/hooks/{token}", json=EVENT, headers=headers) as response,
    ):
        kept = {k.lower(): v for k, v in response.headers.items() if k.lower() != "date"}
        return response.status, kept, await response.read()


async def unknown_token(served: Served) -> tuple[int, dict[str, str], bytes]:
    return await post(served, token="x" * len(TOKEN))


async def stored(served: Served) -> int:
    counts = await served.runtime.queue.counts()
    return sum(counts.values())


async def test_allowed_peer_is_accepted(write_config: Callable[..., Path], tmp_path: Path) -> None:
    path = write_config(config(tmp_path / "q.db", "[127.0.0.0/8, 2001:db8::/32]"))
    async with serve(path, init_queue=True) as served:
        status, _, _ = await post(served)
        assert status == 202


async def test_refused_peer_gets_the_unknown_token_answer_byte_for_byte(
    write_config: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="notirouter.receiver")
    path = write_config(config(tmp_path / "q.db", "[192.0.2.0/24]"))
    async with serve(path, init_queue=True) as served:
        refused = await post(served)
        assert refused[0] == 404
        assert refused == await unknown_token(served)
        assert await stored(served) == 0
    [line] = [r for r in caplog.records if "allow-list" in r.getMessage()]
    assert line.levelno == logging.DEBUG
    assert "127.0.0.1" in line.getMessage()
    assert TOKEN not in caplog.text


async def test_refusal_is_decided_before_the_body_is_read(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(config(tmp_path / "q.db", "[192.0.2.0/24]"))
    async with serve(path, init_queue=True) as served:
        big = {"type": "alert", "action": "created", "pad": "x" * 4096}
        async with (
            aiohttp.ClientSession() as client,
            client.post(f"{served.url}/hooks/{TOKEN}", json=big) as response,
        ):
            # An admitted sender would get 413 for this body: the allow-list came first.
            assert response.status == 404


async def test_forwarded_for_is_ignored_from_an_untrusted_peer(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_config(config(tmp_path / "q.db", "[192.0.2.0/24]"))
    async with serve(path, init_queue=True) as served:
        status, _, _ = await post(served, ["192.0.2.7"])  # spoofed: 127.0.0.1 is no proxy of ours
        assert status == 404


async def test_forwarded_for_from_a_trusted_proxy_ipv4_and_ipv6(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    proxies = ", trusted_proxies: [127.0.0.1/32, 10.0.0.0/8]"
    path = write_config(config(tmp_path / "q.db", "[192.0.2.0/24, 2001:db8::/32]", proxies))
    async with serve(path, init_queue=True) as served:
        assert (await post(served, ["192.0.2.7"]))[0] == 202
        assert (await post(served, ["2001:db8::5"]))[0] == 202
        assert (await post(served, ["2001:db9::5"]))[0] == 404
        assert (await post(served, ["203.0.113.9"]))[0] == 404
        # The client wrote 192.0.2.7 itself; the proxy at 10.1.1.1 saw 203.0.113.9.
        assert (await post(served, ["192.0.2.7, 203.0.113.9, 10.1.1.1"]))[0] == 404
        assert (await post(served, ["192.0.2.7", "203.0.113.9"]))[0] == 404
        # Through two proxies of ours: the sender is the last address before them.
        assert (await post(served, ["203.0.113.9, 192.0.2.7, 10.1.1.1"]))[0] == 202
        # A proxy forwarding nothing: the sender is the proxy itself, not in the list.
        assert (await post(served))[0] == 404
        assert (await post(served, ["not-an-address"]))[0] == 404


TRUSTED = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "sender"),
    [
        ("192.0.2.1", ["198.51.100.1"], "192.0.2.1"),
        ("::ffff:192.0.2.1", [], "192.0.2.1"),
        ("127.0.0.1", ["198.51.100.1, fd00::1"], "198.51.100.1"),
        ("127.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("127.0.0.1", ["fd00::2, 127.0.0.2"], "fd00::2"),
        ("127.0.0.1", ["198.51.100.1, garbage"], None),
    ],
)
def test_client_address(peer: str, forwarded: list[str], sender: str | None) -> None:
    expected = None if sender is None else ipaddress.ip_address(sender)
    assert client_address(peer, forwarded, TRUSTED) == expected


@pytest.mark.parametrize(
    ("allow", "problem"),
    [
        ("[10.0.0.1/24]", "host bits set"),
        ("[300.0.0.0/8]", "CIDR"),
        ("[2001:db8::/129]", "CIDR"),
        ("[]", "at least 1"),
    ],
)
def test_bad_allow_list_is_reported_with_position(
    write_config: Callable[..., Path], tmp_path: Path, allow: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(config(tmp_path / "q.db", allow)), environ={})
    message = str(caught.value)
    assert problem in message
    assert ":3:" in message  # the hook's line
    assert TOKEN not in message


def test_bad_trusted_proxy_is_reported_with_position(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    text = config(tmp_path / "q.db", "[10.0.0.0/8]", ", trusted_proxies: [nginx]")
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text), environ={})
    assert "CIDR" in str(caught.value)
    assert ":1:" in str(caught.value)


@pytest.mark.parametrize(
    ("proxies", "shown"), [("", "127.0.0.1"), (", trusted_proxies: [127.0.0.1/32]", "2001:db8::5")]
)
async def test_access_log_names_the_sender_only_through_a_trusted_proxy(
    write_config: Callable[..., Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    proxies: str,
    shown: str,
) -> None:
    caplog.set_level(logging.INFO, logger="notirouter.access")
    path = write_config(config(tmp_path / "q.db", "[127.0.0.0/8, 2001:db8::/32]", proxies))
    async with serve(path, init_queue=True) as served:
        await post(served, ["2001:db8::5"])
    [line] = [r.getMessage() for r in caplog.records if r.name == "notirouter.access"]
    assert line.startswith(f'{shown} "POST /hooks/***" 202')
