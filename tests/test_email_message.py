"""The email sink's options and the mail it composes (no network)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from notirouter.plugins.email.message import (
    clean_header_text,
    is_thread_root,
    parse_mailbox,
    root_message_id,
    thread_ids,
)
from pydantic import ValidationError

from notirouter.api.manager import collect_types, make_plugin_manager
from notirouter.api.message import Fact, Message, Severity
from notirouter.config.errors import ConfigError
from notirouter.config.loader import load_config

ALERT_UUID = "5696845f-9ecf-4431-9f0f-48ee0ee2eff1"
BASE = {"type": "email", "host": "smtp.example.com", "from": "notirouter@example.com"}


def options(**extra: Any) -> Any:
    cls = collect_types(make_plugin_manager()).sinks["email"]
    return cls.Options.model_validate({**BASE, "to": ["oncall@example.com"], **extra})


def alert(action: str, **update: Any) -> Message:
    message = Message(
        title="Suspicious login",
        text="Many failures",
        severity=Severity.HIGH,
        facts=(Fact(name="Host", value="srv-01"),),
        thread_key=ALERT_UUID,
        route="r1",
        event={
            "type": "alert",
            "action": action,
            "attributes": {"uuid": ALERT_UUID, "short_id": "ALEY4fqz8moo"},
        },
    )
    return message.model_copy(update=update)


def comment() -> Message:
    return alert("created").model_copy(
        update={
            "event": {
                "type": "alert-comment",
                "action": "created",
                "attributes": {
                    "uuid": "0c1f6b1e-0000-4000-8000-000000000001",
                    "alert_uuid": ALERT_UUID,
                    "alert_short_id": "ALEY4fqz8moo",
                    "content": "looking into it",
                },
            }
        }
    )


# -- options -----------------------------------------------------------------------------------


def test_defaults_are_starttls_on_submission_port() -> None:
    opts = options()
    assert (opts.port, opts.starttls, opts.tls, opts.verify_certificate) == (587, True, False, True)


def test_port_465_means_implicit_tls() -> None:
    opts = options(port=465)
    assert (opts.tls, opts.starttls) == (True, False)
    assert options(tls=True).port == 465


def test_clear_text_must_be_asked_for() -> None:
    opts = options(starttls=False, port=25)
    assert (opts.tls, opts.starttls, opts.port) == (False, False, 25)
    assert options(tls=False).starttls  # no implicit TLS still means STARTTLS
    assert options(starttls=False).port == 25


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"tls": True, "starttls": True}, "exclude each other"),
        ({"port": 465, "starttls": True}, "port 465 expects implicit TLS"),
        ({"username": "u", "password": "p", "starttls": False}, "would cross in clear"),
        ({"username": "u"}, "username and password go together"),
        ({"verify_certificate": False, "ca_file": __file__}, "ca_file needs"),
        ({"ca_file": "/nonexistent/ca.pem"}, "Path does not point to a file"),
        ({"to": []}, "at least 1 item"),
        ({"to": ["a@example.com, b@example.com"]}, "not a single email address"),
        ({"to": ["oncall@example.com\r\nBcc: x@evil.test"]}, "line breaks"),
        ({"subject": "{{ broken"}, "template does not compile"),
        ({"smtp_server": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_refused(extra: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        options(**extra)


def test_password_is_a_secret() -> None:
    opts = options(username="notirouter", password="hunter2-secret")
    assert "hunter2-secret" not in repr(opts)
    assert opts.password.get_secret_value() == "hunter2-secret"


def test_contradictory_options_are_config_errors_with_a_line(
    write_config: Callable[[str], Path],
) -> None:
    path = write_config(
        """
        sinks:
          mail:
            type: email
            host: smtp.example.com
            tls: true
            starttls: true
            from: notirouter@example.com
            to: [oncall@example.com]
        routes:
          - name: all
            sinks: [mail]
        """
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    [problem] = caught.value.problems
    assert (problem.position.line, problem.position.column) == (6, 15)  # starttls: true
    assert "exclude each other" in problem.message


def test_password_from_config_is_collected_for_redaction(
    write_config: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret-smtp-pass")
    path = write_config(
        """
        sinks:
          mail:
            type: email
            host: smtp.example.com
            username: notirouter
            password: ${SMTP_PASSWORD}
            from: notirouter@example.com
            to: oncall@example.com
        routes:
          - name: all
            sinks: [mail]
        """
    )
    config = load_config(path)
    assert "s3cret-smtp-pass" in config.secrets
    assert config.sink_options["mail"].to == ["oncall@example.com"]  # type: ignore[attr-defined]


# -- addresses, headers ------------------------------------------------------------------------


def test_parse_mailbox_keeps_display_name() -> None:
    address = parse_mailbox("SOC Alerts <alerts@example.com>")
    assert (address.display_name, address.addr_spec, address.domain) == (
        "SOC Alerts",
        "alerts@example.com",
        "example.com",
    )


def test_clean_header_text_removes_line_breaks_and_bounds_length() -> None:
    assert clean_header_text("a\r\nBcc: x@evil.test\u2028b\tc") == "a Bcc: x@evil.test b c"
    assert len(clean_header_text("x" * 500)) == 200


# -- threading ---------------------------------------------------------------------------------


def test_the_created_alert_is_the_thread_root() -> None:
    assert is_thread_root(alert("created"))
    assert not is_thread_root(alert("updated"))
    assert not is_thread_root(comment())  # created, but a comment on the alert
    assert is_thread_root(alert("created", thread_key="ALEY4fqz8moo"))  # keyed by short id
    ids = thread_ids(alert("created"), "example.com", "mail")
    assert ids.message_id == root_message_id(ALERT_UUID, "example.com", "mail")
    assert ids.message_id.startswith(f"<alert.{ALERT_UUID}.")
    assert ids.message_id.endswith("@example.com>")
    assert ids.in_reply_to is None


def test_each_sink_has_its_own_thread_and_every_route_of_a_sink_shares_it() -> None:
    # Two sinks with one from-domain send different mails: one root id would let a client
    # that drops repeated Message-IDs (Gmail) hide the second from whoever gets both.
    oncall = thread_ids(alert("created"), "example.com", "oncall-mail")
    managers = thread_ids(alert("created"), "example.com", "managers-mail")
    assert oncall.message_id != managers.message_id
    assert thread_ids(alert("updated"), "example.com", "managers-mail").in_reply_to == (
        managers.message_id
    )
    # Created on one route, updated on another: the same sink's mails still share the root.
    other_route = thread_ids(alert("updated", route="r2"), "example.com", "oncall-mail")
    assert other_route.in_reply_to == oncall.message_id
    assert thread_ids(alert("created", route="r2"), "example.com", "oncall-mail") == oncall
    # Stable: renaming nothing, restarting nothing, the id is the same.
    assert root_message_id(ALERT_UUID, "example.com", "oncall-mail") == oncall.message_id


def test_replies_get_their_own_stable_id_and_point_at_the_root() -> None:
    root = root_message_id(ALERT_UUID, "example.com", "mail")
    updated = thread_ids(alert("updated"), "example.com", "mail")
    deleted = thread_ids(alert("deleted"), "example.com", "mail")
    commented = thread_ids(comment(), "example.com", "mail")
    assert updated.in_reply_to == deleted.in_reply_to == commented.in_reply_to == root
    assert len({root, updated.message_id, deleted.message_id, commented.message_id}) == 4
    # The same message (a retry) keeps its id; another sink's copy gets its own.
    assert thread_ids(alert("updated"), "example.com", "mail") == updated
    assert thread_ids(alert("updated"), "example.com", "other").message_id != updated.message_id


def test_hostile_thread_key_is_hashed_into_the_id() -> None:
    hostile = alert("updated", thread_key="x>\r\nBcc: evil@evil.test")
    ids = thread_ids(hostile, "example.com", "mail")
    assert ids.in_reply_to is not None
    assert ids.in_reply_to.startswith("<alert.h") and ids.in_reply_to.endswith("@example.com>")
    assert "\n" not in ids.message_id and "evil" not in ids.message_id


def test_message_without_thread_key_stands_alone() -> None:
    ids = thread_ids(alert("created", thread_key=None), "example.com", "mail")
    assert ids.message_id.startswith("<notirouter.")
    assert ids.in_reply_to is None
