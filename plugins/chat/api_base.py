"""The base URL of a chat service's API that a sink sends a bot token to.

The token goes wherever the URL points, so the URL must be ``https``, or plain ``http`` only on
the loopback interface (a local fake of the service in tests, a local relay).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _check_api_base(value: str) -> str:
    parts = urlsplit(value)
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ValueError("must be an https:// URL with a host")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("must be https:// (plain http only on 127.0.0.1): the token is sent there")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or a fragment")
    return value.rstrip("/")


ApiBase = Annotated[str, AfterValidator(_check_api_base)]
"""An API base URL that a token may be sent to: https, or http on loopback only."""
