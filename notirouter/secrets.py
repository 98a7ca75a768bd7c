"""Finding the secret values in a configuration, so they can be kept out of every output.

Secrets are typed ``SecretStr`` in options (tokens, API keys, passwords, webhook URLs, header
values). Besides each whole value, the parts a service might echo on their own are secrets
too: the token of ``Bearer <token>``, and the credential segments of a webhook URL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

from notirouter.http import url_secrets

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
