"""Token mode of a chat sink: the API base URL a bot token is sent to, and what the mode can do.

The token goes wherever the URL points, so the URL must be ``https``, or plain ``http`` only on
the loopback interface (a local fake of the service in tests, a local relay).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator

from notirouter import ConversationMode

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


def token_mode_conversation(
    token: object | None, configured: ConversationMode | None
) -> ConversationMode | None:
    """Token mode: the configured mode (default update+thread); webhook mode: none."""
    if token is None:
        return None
    return configured or ConversationMode.UPDATE_THREAD


def webhook_mode_lacks(message_word: str, token_settings: str) -> str:
    """What ``check`` says of a sink given a webhook URL instead of a token."""
    return (
        "posts every message: a webhook URL cannot edit, reply in a thread or return"
        f" a {message_word} id (give {token_settings} for update+thread)"
    )
