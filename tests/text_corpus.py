"""Hostile and ordinary values for every message field, for the text sinks' conformance tests.

Each value goes into one field of an otherwise ordinary alert (:func:`message_with`), through
the pipeline's own :func:`~notirouter.routing.pipeline.reveal_message`, as every message does.
"""

from __future__ import annotations

from notirouter.api.message import Fact, Message, Severity
from notirouter.routing.pipeline import reveal_message

OUR_LINK = "https://app.sekoia.io/operations/alerts/ALEY4fqz8moo"
SHORT_ID = "ALEY4fqz8moo"
EVIL = "https://evil.example/login"

HOSTILE: dict[str, str] = {
    "at-mentions": "@channel @here @all @everyone ~channel ping",
    "slack-mentions": "<!channel> <!here> <!everyone> <@U024BE7LH> <#C0123ABC> <!subteam^S1>",
    "slack-link": f"<{EVIL}|Reset your password> <{EVIL}>",
    "markdown-link": f"[Reset your password]({EVIL}) ![pixel]({EVIL}.png)",
    "urls": f"{EVIL} www.evil.example _https://evil.example/sso //evil.example/x",
    "bare-domain-and-channel": "evil.example/login #general #soc-alerts",
    "emphasis": "*bold* **bold** _italic_ ~strike~ `code` ```pre``` :fire:",
    "zwsp-emphasis": "*\u200bbold*\u200b _\u200bit_\u200b",
    "quote-and-lists": "> quoted\n- item\n# heading\n1. first",
    "html": '<b>bold</b> <img src=x onerror=alert(1)> <script>alert(1)</script> <a href="x">a</a>',
    "attribute-breakout": '" onmouseover="alert(1)" style="x \' onclick=\'y\' </td></tr><tr>',
    "entities": "&lt;tag&gt; &amp; &amp;lt; &#60; &quot; &nbsp;",
    "schemes": "javascript:alert(1) data:text/html;base64,PHNjcmlwdD4= vbscript:x",
    "backslashes": "back\\slash \\* \\_ \\< \\\\ C:\\Users\\x",
    "bidi": "invoice\u202efdp.exe \u2066isolate\u2069 \u200fmark \u061carabic",
    "invisible": "zero\u200bwidth \ufeffbom soft\u00adhyphen",
    "header-injection": "Subject: forged\r\nBcc: victim@evil.example\r\n\r\nbody",
    "encoded-word": "=?utf-8?b?4oCuZXhlLnBkZg==?= =?utf-8?q?=E2=80=AE?=",
    "line-separators": "one\u2028two\u2029three\x85four",
}
"""Values an attacker puts in an alert, by name."""

ORDINARY: dict[str, str] = {
    "time": "2026-01-14T15:06:57Z",
    "windows-path": "C:\\Windows\\System32\\cmd.exe",
    "url-with-underscores": "https://intranet.example/a_b_c/d_e?x_y=1",
    "a-colon-b": "a:b key:value 10:30",
    "email-address": "analyst@example.com, first.last+tag@soc.example.org",
    "ampersand-and-angles": "a < b && c > d, R&D",
    "snake-case": "snake_case_name __init__ 2*3*4",
}
"""Everyday values that must show exactly as typed (no invisible character in them either)."""

# An email address or a time must survive even a copy: nothing, visible or not, inserted.
EXACT = {"time", "windows-path", "a-colon-b", "email-address", "ampersand-and-angles"}

FIELDS = ("title", "text", "fact_name", "fact_value", "link_label")

MULTILINE = "First paragraph, line one.\nLine two.\n\nSecond paragraph."


def message_with(field: str, value: str, severity: Severity = Severity.HIGH) -> Message:
    """An ordinary alert with ``value`` in ``field``, as the pipeline hands it to sinks."""
    title, text, label = "Suspicious login on srv-01", "12 failed logins, then a success.", "Open"
    facts = [Fact(name="Rule", value="Brute force then success")]
    if field == "title":
        title = value
    elif field == "text":
        text = value
    elif field == "fact_name":
        facts.append(Fact(name=value, value="x"))
    elif field == "fact_value":
        facts.append(Fact(name="Host", value=value))
    elif field == "link_label":
        label = value
    else:
        raise ValueError(field)
    return reveal_message(
        Message(
            title=title,
            text=text,
            severity=severity,
            link=OUR_LINK,
            link_label=label,
            facts=tuple(facts),
            thread_key="5696845f-9ecf-4431-9f0f-48ee0ee2eff1",
            route="urgent",
            event={"type": "alert", "action": "created", "attributes": {"short_id": SHORT_ID}},
        )
    )


def shown(field: str, value: str) -> str:
    """What the field holds once the pipeline revealed invisible characters."""
    message = message_with(field, value)
    if field == "title":
        return message.title
    if field == "text":
        return message.text
    if field == "fact_name":
        return message.facts[-1].name
    if field == "fact_value":
        return message.facts[-1].value
    return message.link_label
