"""Tests that need an outside service (PostgreSQL, Node.js) skip, or fail in CI, when it is missing.

``make test`` must pass on a bare machine, so such a test skips with a printed reason. CI has
every service, so ``.ci/run`` sets ``NOTIROUTER_REQUIRE_SERVICES=1`` and the same call fails the
test instead: a skip there would hide that the test never ran.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "NOTIROUTER_REQUIRE_SERVICES"


def services_required() -> bool:
    """Whether a missing service is a failure (CI) rather than a skip (a bare machine)."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def service_missing(reason: str) -> NoReturn:
    """Skip the current test because ``reason``; fail it instead when services are required."""
    if services_required():
        pytest.fail(f"required service missing ({REQUIRE_ENV}=1): {reason}", pytrace=False)
    pytest.skip(f"service missing: {reason}")
