"""Options of the ``sekoia`` enricher: regions and addresses are checked when the config loads."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from notirouter.config.errors import ConfigError
from notirouter.config.loader import LoadedConfig, load_config_text

TEMPLATE = """
sinks: {console: {type: log}}
enrichers:
  sekoia:
    type: sekoia
    api_key: sk-live-abcdefghijklmnop
OPTIONS
routes:
  - {name: all, match: {type: "*"}, enrich: [sekoia], sinks: [console]}
"""


def load(options: str) -> LoadedConfig:
    body = textwrap.indent(textwrap.dedent(options).strip("\n"), "    ") if options else ""
    text = textwrap.dedent(TEMPLATE).replace("OPTIONS", body)
    return load_config_text(text, "notirouter.yaml")


def effective(options: str) -> tuple[str, str]:
    loaded: Any = load(options).enricher_options["sekoia"]
    return loaded.api_base, loaded.app_base


@pytest.mark.parametrize(
    ("options", "api", "app"),
    [
        ("", "https://api.sekoia.io", "https://app.sekoia.io"),
        ("base_url: https://api.sekoia.io/", "https://api.sekoia.io", "https://app.sekoia.io"),
        (
            "base_url: https://app.sekoia.io/api",
            "https://app.sekoia.io/api",
            "https://app.sekoia.io",
        ),
        ("region: fra2", "https://app.fra2.sekoia.io/api", "https://app.fra2.sekoia.io"),
        (
            "base_url: https://app.mco1.sekoia.io",  # the app address: /api is implied
            "https://app.mco1.sekoia.io/api",
            "https://app.mco1.sekoia.io",
        ),
        (
            "base_url: https://api.usa1.sekoia.io",
            "https://api.usa1.sekoia.io",
            "https://app.usa1.sekoia.io",
        ),
        (
            "base_url: http://127.0.0.1:8080\nregion: uae1",
            "http://127.0.0.1:8080",
            "https://app.uae1.sekoia.io",
        ),
        (
            "base_url: http://localhost:9/x/\napp_url: https://app.test.sekoia.io/",
            "http://localhost:9/x",
            "https://app.test.sekoia.io",
        ),
    ],
)
def test_addresses_per_region(options: str, api: str, app: str) -> None:
    assert effective(options) == (api, app)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("base_url: http://api.sekoia.io", "known region over https"),
        ("base_url: https://api.sekoia.io.evil.example", "known region over https"),
        ("base_url: https://app.eur1.sekoia.io/api", "known region over https"),
        ("base_url: https://api.sekoia.io:8443", "known region over https"),
        ("base_url: https://api.sekoia.io/v1", "unexpected path"),
        ("base_url: 'https://user:pw@api.sekoia.io'", "credentials"),
        ("base_url: http://10.0.0.1:8080", "loopback"),
        (
            "base_url: https://app.fra2.sekoia.io/api\nregion: fra1",
            "region fra2 but region is fra1",
        ),
        ("base_url: http://127.0.0.1:8080", "give region or app_url"),
        ("region: eur1", "region"),
        ("app_url: 'javascript:alert(1)'", "app_url must be an https"),
        ("case_link: '{app_url}/cases/{name}'", "unknown placeholder 'name'"),
        ("attempts: 0", "attempts"),
        ("timeout: soon", "duration"),
        ("circuit_cooldown: 1m\ncircuit_cooldown_max: 30s", "circuit_cooldown_max must not"),
        ("circuit_failures: -1", "circuit_failures"),
        ("unknown_option: 1", "unknown key 'unknown_option'"),
        ("reconcile: {lookback: 10s}", "reconcile.lookback"),
        ("reconcile: {interval: 0s}", "reconcile.interval"),
        ("reconcile: {page_size: 5000}", "reconcile.page_size"),
        ("reconcile: {every: 1m}", "unknown key 'every'"),
        (
            "communities: [a]\nreconcile: {communities: [a, b]}",
            "reconcile.communities must be among communities; not there: b",
        ),
    ],
)
def test_bad_options_are_config_errors_with_a_line(options: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(options)
    text = "\n".join(str(p) for p in caught.value.problems)
    assert message in text
    assert "notirouter.yaml:" in text
    assert "sk-live-abcdefghijklmnop" not in text


def test_durations_and_the_key_is_a_secret() -> None:
    loaded = load("timeout: 500ms\ncache_ttl: 2m")
    options: Any = loaded.enricher_options["sekoia"]
    assert options.timeout == 0.5
    assert options.cache_ttl == 120
    assert (options.circuit_failures, options.circuit_cooldown) == (5, 5.0)
    assert options.circuit_cooldown_max == 300.0
    assert "sk-live-abcdefghijklmnop" in loaded.secrets  # redacted from every log line
    assert "sk-live" not in repr(options)


def test_an_api_key_unfit_for_a_header_is_refused_without_being_shown() -> None:
    text = (
        textwrap.dedent(TEMPLATE)
        .replace("OPTIONS", "")
        .replace("sk-live-abcdefghijklmnop", "'sk-live-abcdefghijklmnop with-space'")
    )
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "notirouter.yaml")
    problems = "\n".join(str(p) for p in caught.value.problems)
    assert "notirouter.yaml:6:" in problems
    assert "api_key must be printable ASCII without spaces" in problems
    assert "with-space" not in problems


def test_the_api_key_is_trimmed() -> None:
    text = (
        textwrap.dedent(TEMPLATE)
        .replace("OPTIONS", "")
        .replace("sk-live-abcdefghijklmnop", "' sk-live-abcdefghijklmnop '")
    )
    options: Any = load_config_text(text, "notirouter.yaml").enricher_options["sekoia"]
    assert options.api_key.get_secret_value() == "sk-live-abcdefghijklmnop"


def test_reconcile_defaults_and_durations() -> None:
    loaded: Any = load("reconcile: {interval: 2m, lookback: 12h}").enricher_options["sekoia"]
    settings = loaded.reconcile
    assert (settings.interval, settings.lookback, settings.delay) == (120.0, 43_200.0, 60.0)
    assert settings.communities is None and settings.page_size == 100
    assert load("").enricher_options["sekoia"].reconcile is None  # type: ignore[attr-defined]
