"""Which address a webhook came from, and whether its hook admits it (``hooks[].allow``).

Behind a reverse proxy the TCP peer is the proxy; the sender is in ``X-Forwarded-For``, a
header anyone can write. It is believed only from ``server.trusted_proxies``, and read from the
right: each trusted proxy appends the address it saw, so the right-most address that is not a
trusted proxy is the first one no proxy of ours vouches for, and everything left of it may be
forged by the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> Address | None:
    """An IP address from a peer or a header entry (``[v6]``, ``v4:port`` tolerated), or None."""
    text = text.strip()
    if text.startswith("["):  # "[2001:db8::1]" or "[2001:db8::1]:443"
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # "192.0.2.1:443"; a bare IPv6 address has several colons
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; an allow-list says a.b.c.d.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[Network]
) -> Address | None:
    """The sender's address, or None when it cannot be known (then no allow-list admits it).

    ``forwarded_for`` holds every ``X-Forwarded-For`` header value in order; they are read only
    when ``peer`` is a trusted proxy.
    """
    address = parse_address(peer) if peer else None
    if address is None or not _within(address, trusted_proxies):
        return address
    chain = [part for value in forwarded_for for part in value.split(",")]
    for entry in reversed(chain):
        hop = parse_address(entry)
        if hop is None:
            # Garbage in the chain: whatever lies left of it is not vouched for, and the
            # garbage itself is no address to admit.
            return None
        if not _within(hop, trusted_proxies):
            return hop
        address = hop
    # Every hop is one of our proxies (or there was no header): the left-most is the sender.
    return address


def admits(allow: Sequence[Network] | None, address: Address | None) -> bool:
    """Whether a hook with allow-list ``allow`` (None: anyone) accepts ``address``."""
    if allow is None:
        return True
    return address is not None and _within(address, allow)
