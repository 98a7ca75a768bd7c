"""The switch that makes CI fail, rather than skip, a test whose service is missing."""

from __future__ import annotations

import pytest

from tests.services import REQUIRE_ENV, service_missing


def test_missing_service_skips_on_a_bare_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="service missing: node not found"):
        service_missing("node not found")


def test_missing_service_fails_when_ci_requires_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="required service missing"):
        service_missing("node not found")
