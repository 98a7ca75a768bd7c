"""Messages the chat sink tests render: an ordinary alert, a hostile one, huge ones, odd ones."""

from __future__ import annotations

from notirouter.api.message import Fact, Message, Severity
from notirouter.delivery.digests import digest_message
from notirouter.queue.records import DueGroup, GroupedItem

SEKOIA_LINK = "https://app.sekoia.io/operations/alerts/ALEY4fqz8moo"

ALERT = Message(
    title="Suspicious PowerShell download on srv-web-01",
    text=(
        "PowerShell on srv-web-01 downloaded a script from a remote host and ran it.\n"
        "Command line: powershell.exe -nop -w hidden -c IEX (New-Object Net.WebClient)"
    ),
    severity=Severity.CRITICAL,
    link=SEKOIA_LINK,
    link_label="Open in Sekoia.io",
    facts=(
        Fact(name="Urgency", value="82 (Major)"),
        Fact(name="Status", value="Pending"),
        Fact(name="Rule", value="PowerShell download cradle"),
        Fact(name="Entity", value="Paris datacenter"),
        Fact(name="Source → target", value="10.0.4.12 → 185.220.101.7"),
        Fact(name="First seen", value="2026-01-14T15:06:57Z"),
        Fact(name="Occurrences", value="3"),
    ),
    thread_key="5696845f-9ecf-4431-9f0f-48ee0ee2eff1",
    route="urgent-alerts",
)

EVIL = "https://evil.example/login"
# Everything an attacker controls in an alert, trying every trick the four services know.
HOSTILE = Message(
    title=f"@channel <!here> [Reset your password]({EVIL}) ![x]({EVIL}.png)",
    text=(
        "@everyone @here @all <!channel> <!everyone> <@U024BE7LH> <@&1234> <#C123>\n"
        f"<{EVIL}|Click here> [login]({EVIL}) ![pixel]({EVIL}.png) {EVIL} www.evil.example\n"
        "**bold** _italic_ ~~strike~~ `code` ||spoiler||\n"
        "# Heading\n> quote\n- list item\n1. numbered\n---\n"
        "<b>html</b> &amp; &lt;tag&gt; javascript:alert(1) C:\\Windows\\System32\\cmd.exe"
    ),
    severity=Severity.HIGH,
    link="javascript:alert(document.cookie)",
    link_label=f"[Open]({EVIL}) @channel",
    facts=(
        Fact(name=f"[host]({EVIL})", value="@everyone"),
        Fact(name="<!channel>", value=f"<{EVIL}|srv-01> **srv**"),
        Fact(name="user", value="@here ![img](https://evil.example/i.png)"),
    ),
)

# The same with a valid link: the attacker's link label must show as text on the button.
HOSTILE_LINKED = HOSTILE.model_copy(update={"link": SEKOIA_LINK})

_CHUNK = 'naïve "quoted" \\ back\\slash \t tab \x01 ctrl 💥 emoji ☃ snow <b> & Ω\n'
HUGE = Message(
    title="Huge " + "🚨 título muy largo " * 400,
    text=_CHUNK * 3_000,
    severity=Severity.MEDIUM,
    link=SEKOIA_LINK,
    link_label="Open in Sekoia.io " * 20,
    facts=tuple(
        Fact(name=f"fact {i} " + "ñ" * 400, value=(f"value {i} " + _CHUNK) * 80) for i in range(200)
    ),
)

# Markdown-heavy text at every length: escaping multiplies it, truncation must still fit.
DENSE = Message(
    title="*_[]()`~" * 100,
    text="*_[]()`~#>-+!|\\" * 8_000,
    severity=Severity.LOW,
    link=SEKOIA_LINK,
    facts=tuple(Fact(name="*_[]" * 100, value="`~()#" * 900) for _ in range(60)),
)

EMPTY = Message(title="", text="", severity=Severity.INFO)

MULTIBYTE = Message(
    title="🔥" * 300,
    text="\U0001d54f" * 9_000,
    severity=Severity.CRITICAL,
    link=SEKOIA_LINK,
    facts=tuple(Fact(name="🔥" * 200, value="\U0001d54f" * 1_500) for _ in range(30)),
)

ONE_PER_SEVERITY = tuple(
    ALERT.model_copy(update={"severity": severity, "title": f"{severity.value} alert"})
    for severity in Severity
)


def digest_of(items: list[Message], max_items: int) -> Message:
    """The digest a group holding ``items`` sends (README "Storm control")."""
    held = [
        GroupedItem(n, f"event-{n}", m.severity.rank, m.link, m.model_dump_json())
        for n, m in enumerate(items, 1)
    ]
    held = [
        item
        if n < max_items
        else GroupedItem(item.id, item.event_id, item.severity, item.link, None)
        for n, item in enumerate(held)
    ]
    key = '[["alert.rule.name","@channel <!here> [x](https://evil.example/login)"]]'
    return digest_message(DueGroup("group", "storm", key, ("a",), max_items, 1, held))


# A digest of hostile items, with some left out ("and N more").
DIGEST = digest_of([HOSTILE, HOSTILE_LINKED, ALERT, *ONE_PER_SEVERITY, HOSTILE], max_items=5)

ALL = {
    "alert": ALERT,
    "hostile": HOSTILE,
    "hostile-linked": HOSTILE_LINKED,
    "huge": HUGE,
    "dense": DENSE,
    "empty": EMPTY,
    "multibyte": MULTIBYTE,
    **{f"severity-{m.severity.value}": m for m in ONE_PER_SEVERITY},
    "digest": DIGEST,
}
"""Every sample, by name, for parametrised tests."""
