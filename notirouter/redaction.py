"""Redaction, in one place: which values are secret, and taking them out of any text.

Secrets are typed ``SecretStr`` in options (tokens, API keys, passwords, webhook URLs, header
values). Besides each whole value, the parts a service might echo on their own are secrets
too: the token of ``Bearer <token>``, and the credential segments of a webhook URL. Every
output (log lines, failure details, dead letters, notification text) goes through a
:class:`Redactor` built once from them; hook tokens also sit in request paths, which
:func:`redact_path` hides in the access log.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, SecretStr

from notirouter.printable import inert

MIN_SECRET_PART = 8  # shorter pieces would redact ordinary words


def secret_values(value: Any) -> Iterable[str]:
    """Every ``SecretStr`` value inside a model, mapping or sequence."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_values(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from secret_values(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from secret_values(item)


def expand_secrets(values: Iterable[str]) -> frozenset[str]:
    """The values, plus the parts of each that could leak alone (URL segments, header tokens)."""
    found: set[str] = set()
    for value in values:
        if len(value) < 4:
            continue
        found.add(value)
        if value.startswith(("http://", "https://")):
            found.update(url_secrets(value))
        found.update(part for part in value.split() if len(part) >= MIN_SECRET_PART)
    return frozenset(found)


_SECRET_PART_MIN = 16


def url_secrets(url: str) -> list[str]:
    """The parts of a webhook ``url`` that may be a credential, longest first.

    The URL itself, and each long path segment and query value (raw and decoded), so that a
    service echoing just its hook id in an error body cannot leak it into a failure detail.
    """
    parts = urlsplit(url)
    found = {url}
    if parts.password:
        found.add(parts.password)
    for segment in parts.path.split("/"):
        if len(segment) >= _SECRET_PART_MIN:
            found.update({segment, unquote(segment)})
    for _, value in parse_qsl(parts.query):
        if len(value) >= _SECRET_PART_MIN:
            found.add(value)
    for raw in parts.query.split("&"):
        value = raw.partition("=")[2]
        if len(value) >= _SECRET_PART_MIN:
            found.add(value)
    return sorted(found, key=len, reverse=True)


REDACTED = "***"


class Redactor:
    """Replaces every secret in a text with ``***``; built once, applied to every line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is replaced whole, no suffix left.
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


def redact_path(path: str) -> str:
    """The path as logged: hook tokens are secrets, so ``/hooks/<token>`` loses the token.

    Any other path is the client's text, percent-decoded: ``%0A`` and ``%1B`` are escaped, so
    it can neither forge a log line nor send an ANSI escape to a terminal.
    """
    if path.startswith("/hooks/"):
        return "/hooks/***"
    return inert(path)
