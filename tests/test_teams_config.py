"""The teams sink's configuration: retired connector URLs, ``auth:`` validation, the preview."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from notirouter.cli import main
from tests.chat_helpers import SECRET, build_sink
from tests.chat_messages import ALERT

CLIENT_SECRET = "Q8~entraClientSecretValue-0123456789"
AUTH = (
    "{tenant_id: contoso.onmicrosoft.com, client_id: 3f0c2a51-7d4e-4b8a-9c61-2e5f8d9a0b17, "
    f"client_secret: {CLIENT_SECRET}"
)


def check(write_config: Callable[..., Path], sink: str) -> tuple[int, str]:
    path = write_config(
        f"""
        hooks: [{{name: s, token: test-token-0123456789abcdef}}]
        sinks:
          teams: {sink}
        routes: [{{name: r, sinks: [teams]}}]
        """
    )
    return main(["check", "-c", str(path)]), str(path)


@pytest.mark.parametrize(
    "url",
    [
        f"https://contoso.webhook.office.com/webhookb2/{SECRET}@{SECRET}/IncomingWebhook/{SECRET}/x",
        f"https://outlook.office.com/webhook/{SECRET}/IncomingWebhook/{SECRET}",
        f"https://WEBHOOK.OFFICE.COM/webhookb2/{SECRET}",
    ],
)
def test_check_refuses_a_retired_connector_url_and_says_what_to_do(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str], url: str
) -> None:
    code, path = check(write_config, f"{{type: teams, url: '{url}'}}")
    err = capsys.readouterr().err
    assert code == 1
    assert f"{path}:3:" in err  # file:line:col of the sink
    assert "retired Office 365 connector" in err
    assert "Post to a channel when a webhook request is received" in err
    assert SECRET not in err


def test_check_accepts_a_workflows_url(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"https://prod-01.westeurope.logic.azure.com/workflows/{SECRET}/triggers/manual/paths/invoke?sig={SECRET}"
    code, _ = check(write_config, f"{{type: teams, url: '{url}', auth: {AUTH}}}}}")
    assert code == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    ("auth", "problem"),
    [
        (AUTH + ", authority: 'http://login.example.com'}", "authority must be an https://"),
        (AUTH + ", authority: 'https://u:p@login.example.com'}", "authority must be an https://"),
        (AUTH + ", authority: 'https://login.example.com/?x=1'}", "query"),
        (AUTH + ", audience: 'service.flow.microsoft.com'}", "audience must be"),
        (AUTH.replace("3f0c2a51-7d4e-4b8a-9c61-2e5f8d9a0b17", "my-app") + "}", "client_id"),
        (AUTH.replace("contoso.onmicrosoft.com", "'a/b'") + "}", "tenant_id"),
        (AUTH + ", extra: 1}", "extra"),
    ],
)
def test_bad_auth_is_reported_with_position_and_without_the_secret(
    write_config: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    auth: str,
    problem: str,
) -> None:
    url = f"https://prod-01.westeurope.logic.azure.com/workflows/{SECRET}"
    code, path = check(write_config, f"{{type: teams, url: '{url}', auth: {auth}}}")
    captured = capsys.readouterr()
    assert code == 1
    assert problem in captured.err
    assert f"{path}:3:" in captured.err
    assert CLIENT_SECRET not in captured.err + captured.out
    assert SECRET not in captured.err + captured.out


def test_loopback_authority_is_accepted_over_http() -> None:
    auth = {
        "tenant_id": "contoso.onmicrosoft.com",
        "client_id": "3f0c2a51-7d4e-4b8a-9c61-2e5f8d9a0b17",
        "client_secret": CLIENT_SECRET,
        "authority": "http://127.0.0.1:8080/",
    }
    sink = build_sink("teams", auth=auth)
    assert sink.options.auth.token_url == (
        "http://127.0.0.1:8080/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert CLIENT_SECRET not in repr(sink.options)


def test_card_carries_a_notification_preview() -> None:
    payload = build_sink("teams").render(ALERT)
    card = payload["attachments"][0]["content"]
    assert payload["summary"] == card["fallbackText"]
    assert payload["summary"].startswith(f"{ALERT.severity.value.upper()}: ")
    assert ALERT.title in payload["summary"]
