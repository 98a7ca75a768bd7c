"""Email: every hostile value in every field reads as its literal text, and nothing else.

The mail is the exact bytes the sink submits, parsed back by Python's ``email`` package (as a
client reads it); the HTML part is read with ``html.parser``: its visible text is compared,
and only the template's own tags and attributes, and our own link, may be in it.
"""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import default
from html.parser import HTMLParser
from typing import Any

import pytest

from notirouter.api.http import HttpClient
from notirouter.api.manager import collect_types, make_plugin_manager
from notirouter.api.message import Message, Severity
from notirouter.api.sink import Sink, SinkContext
from tests.text_corpus import (
    EXACT,
    FIELDS,
    HOSTILE,
    MULTILINE,
    ORDINARY,
    OUR_LINK,
    SHORT_ID,
    message_with,
    shown,
)

ZWSP = "\u200b"
RAW_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\ufeff\u00ad]")
ONE_LINE_FIELDS = {"title", "fact_name", "fact_value", "link_label"}
HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "MIME-Version",
    "Content-Type",
}


def email_sink(**extra: Any) -> Sink[Any]:
    cls = collect_types(make_plugin_manager(load_entry_points=False)).sinks["email"]
    options = cls.Options.model_validate(
        {"type": "email", "host": "127.0.0.1", "from": "a@alerts.example", "to": "b@example.com"}
        | extra
    )
    return cls("mail", options, SinkContext(name="mail", http=HttpClient()))


def mail_of(message: Message) -> EmailMessage:
    """The submitted bytes, parsed back as a mail client would."""
    data = email_sink().composer.compose(message).as_bytes()  # type: ignore[attr-defined]
    parsed = email.message_from_bytes(data, policy=default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class HtmlReader(HTMLParser):
    """The visible text, every tag with its attributes, the document title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[tuple[str, str | None], ...]]] = []
        self.text: list[str] = []
        self.title: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(attrs)))
        self._in_title = tag == "title"
        if tag == "br":
            self.text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False
        if tag in ("p", "td", "th", "h2", "tr"):
            self.text.append("\n")

    def handle_data(self, data: str) -> None:
        (self.title if self._in_title else self.text).append(data)


def read_html(html: str) -> HtmlReader:
    reader = HtmlReader()
    reader.feed(html)
    reader.close()
    return reader


def parts(mail: EmailMessage) -> tuple[str, str]:
    plain, html = mail.iter_parts()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    # Line ends as a reader sees them (the wire has CRLF).
    text, markup = plain.get_content(), html.get_content()  # type: ignore[attr-defined]
    return text.replace("\r\n", "\n"), markup.replace("\r\n", "\n")


def subject_of(mail: EmailMessage) -> str:
    """The subject as a client shows it: Python keeps the space of a fold after the colon."""
    return str(mail["Subject"]).strip()


def template_tags() -> set[tuple[str, tuple[tuple[str, str | None], ...]]]:
    """Every (tag, attributes) the template writes, for every severity, cut text included."""
    seen = set()
    for severity in Severity:
        for text in ("one line", MULTILINE, "x " * 200_000):
            message = message_with("text", text, severity)
            seen |= set(read_html(parts(mail_of(message))[1]).tags)
    return seen


ALLOWED_TAGS = template_tags()


def expected(field: str, value: str) -> str:
    text = shown(field, value)
    if field in ONE_LINE_FIELDS:
        return " ".join(text.split())
    return text.strip().replace("\r\n", "\n")  # a mail's lines end as the reader's do


def flat(text: str) -> str:
    return " ".join(text.replace(ZWSP, "").split())


def check_mail(field: str, value: str) -> tuple[EmailMessage, str, HtmlReader]:
    mail = mail_of(message_with(field, value))
    assert set(mail.keys()) == HEADERS and len(mail.keys()) == len(HEADERS)
    subject = subject_of(mail)
    assert "\n" not in subject and "\r" not in subject
    assert subject.startswith("[HIGH] ") and subject.endswith(f" ({SHORT_ID})")
    plain, html = parts(mail)
    reader = read_html(html)
    for tag in reader.tags:
        assert tag in ALLOWED_TAGS, tag  # no <img>, <script>, <a> or attribute of the attacker's
    links = [dict(attrs).get("href") for tag, attrs in reader.tags if tag == "a"]
    assert links == [OUR_LINK]
    for text in (subject, plain, html):
        assert not RAW_INVISIBLE.search(text)
    return mail, plain, reader


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_value_shows_as_typed_and_nothing_else(field: str, name: str) -> None:
    value = HOSTILE[name]
    mail, plain, reader = check_mail(field, value)
    want = expected(field, value)
    visible = "".join(reader.text)
    assert flat(want) in flat(visible)
    assert want.replace(ZWSP, "") in plain.replace(ZWSP, "")
    assert visible.count("\\") == want.count("\\")
    if field == "title":
        assert flat(want) in flat(subject_of(mail))
        assert flat(want) in flat("".join(reader.title))
    # Untrusted URLs never link: the scheme is broken in both parts.
    for part in (plain.replace(OUR_LINK, ""), visible):
        assert not re.search(r"(?i)(https?|javascript|data|vbscript):", part), part


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_ordinary_value_shows_exactly_as_typed(field: str, name: str) -> None:
    value = ORDINARY[name]
    mail, plain, reader = check_mail(field, value)
    want = expected(field, value)
    visible = "".join(reader.text)
    assert flat(want) in flat(visible)
    assert want.replace(ZWSP, "") in plain.replace(ZWSP, "")
    if name in EXACT:  # nothing inserted, not even invisibly
        assert want in plain
        assert " ".join(want.split()) in " ".join(visible.split())
        if field == "title":
            assert want in subject_of(mail)


def test_text_keeps_paragraphs_and_line_breaks_in_both_parts() -> None:
    plain, html = parts(mail_of(message_with("text", MULTILINE)))
    assert MULTILINE in plain
    assert "<p>First paragraph, line one.<br>\nLine two.</p>" in html
    assert "<p>Second paragraph.</p>" in html


def test_long_text_is_cut_with_the_marker_and_the_link_to_the_whole() -> None:
    text = "word " * 50_000
    plain, html = parts(mail_of(message_with("text", text)))
    assert "… [truncated]" in plain
    assert f"Full text: {OUR_LINK}" in plain
    assert html.count(f'href="{OUR_LINK}"') == 2
    assert len(plain) > 100_000  # cut far above anything a reader needs, not at 1,000


def test_typed_entities_read_the_same_in_subject_and_both_parts() -> None:
    mail, plain, reader = check_mail("title", "A &lt;b&gt; &amp; title")
    assert "A &lt;b&gt; &amp; title" in subject_of(mail)
    assert "A &lt;b&gt; &amp; title" in plain
    assert "A &lt;b&gt; &amp; title" in "".join(reader.text)


def test_encoded_words_in_a_title_stay_literal_in_the_subject() -> None:
    # A client decodes "=?utf-8?b?...?=" in a header: typed in a title, it would bring a raw
    # U+202E back into the subject after notirouter revealed every bidi control.
    mail, _, _ = check_mail("title", HOSTILE["encoded-word"])
    assert "\u202e" not in subject_of(mail)
    assert flat(HOSTILE["encoded-word"]) in flat(subject_of(mail))


def test_bidi_in_the_title_cannot_reverse_the_subject_suffix() -> None:
    mail, _, _ = check_mail("title", "invoice\u202efdp.exe")
    assert subject_of(mail) == f"[HIGH] invoice⟨U+202E⟩fdp.exe ({SHORT_ID})"


def test_a_long_title_keeps_the_subject_suffix() -> None:
    mail, _, _ = check_mail("title", "very long title " * 40)
    assert len(subject_of(mail)) <= 200
    assert "… [truncated]" in subject_of(mail)


@pytest.mark.parametrize("severity", list(Severity))
def test_each_severity_has_its_own_label_and_style(severity: Severity) -> None:
    message = message_with("title", "x", severity)
    mail = mail_of(message)
    plain, html = parts(mail)
    assert subject_of(mail).startswith(f"[{severity.label}] ")
    assert f"Severity: {severity.label}" in plain
    reader = read_html(html)
    badge = next(attrs for tag, attrs in reader.tags if tag == "span")
    styles = {
        s: next(a for t, a in read_html(parts(mail_of(message_with("title", "x", s)))[1]).tags
                if t == "span")
        for s in Severity
    }  # fmt: skip
    assert list(styles.values()).count(badge) == 1  # a style of its own
    assert severity.label in "".join(reader.text)


def test_a_subject_template_reading_the_raw_event_still_shows_bidi_visibly() -> None:
    # Templates may read the event itself, which the pipeline does not touch.
    sink = email_sink(subject="{{ event.attributes.name }} ({{ short_id }})")
    message = message_with("title", "x").model_copy(
        update={"event": {"attributes": {"name": "invoice\u202efdp.exe", "short_id": SHORT_ID}}}
    )
    data = sink.composer.compose(message).as_bytes()  # type: ignore[attr-defined]
    mail = email.message_from_bytes(data, policy=default)
    assert str(mail["Subject"]).strip() == f"invoice⟨U+202E⟩fdp.exe ({SHORT_ID})"
