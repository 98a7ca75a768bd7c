"""Log sink: one line per message, exact JSON data, and nothing in it that hides or reorders.

The line is read as a terminal or a log viewer shows it (no bidi control may act, no line
separator may split it) and as a log shipper parses it (``json.loads`` gives the exact data).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from notirouter.api.http import HttpClient
from notirouter.api.manager import collect_types, make_plugin_manager
from notirouter.api.sink import Outcome, Sink, SinkContext
from tests.text_corpus import EXACT, FIELDS, HOSTILE, ORDINARY, message_with, shown

# What must never reach a terminal raw: bidi controls, invisible and format characters, C1
# controls and the line separators some viewers break lines at.
HIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b\u200e\u200f\u202a-\u202e"
    "\u2028\u2029\u2060-\u2069\ufeff]"
)
VALUES = {**HOSTILE, **ORDINARY}


def log_sink(**options: Any) -> Sink[Any]:
    cls = collect_types(make_plugin_manager(load_entry_points=False)).sinks["log"]
    validated = cls.Options.model_validate({"type": "log", **options})
    return cls("log", validated, SinkContext(name="log", http=HttpClient()))


async def one_line(capsys: pytest.CaptureFixture[str], sink: Sink[Any], message: Any) -> str:
    result = await sink.send(message)
    assert result.outcome is Outcome.DELIVERED
    out = capsys.readouterr().out
    assert out.endswith("\n") and out.count("\n") == 1, out
    return out[:-1]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("name", sorted(VALUES))
async def test_every_value_is_one_visible_line_of_exact_json(
    capsys: pytest.CaptureFixture[str], field: str, name: str
) -> None:
    value = VALUES[name]
    message = message_with(field, value)
    # The raw value in the event too: include_event prints it as the source sent it.
    message = message.model_copy(update={"event": {"attributes": {"raw": value}}})
    line = await one_line(capsys, log_sink(include_event=True), message)
    assert not HIDDEN.search(line), line
    data = json.loads(line)
    assert data["event"]["attributes"]["raw"] == value  # exact for the log shipper
    summary = message.summary()
    assert {key: data[key] for key in summary} == summary
    where = {"title": "title", "text": "text", "link_label": "link_label"}
    if field in where:
        assert data[where[field]] == shown(field, value)
    if name in EXACT:
        # An address or a path reads as typed in the line itself: JSON's own escapes (a
        # backslash doubled) and nothing else.
        assert json.dumps(value, ensure_ascii=False)[1:-1] in line


async def test_bidi_in_a_message_shows_as_a_visible_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = await one_line(capsys, log_sink(), message_with("title", "invoice\u202efdp.exe"))
    assert '"title": "invoice⟨U+202E⟩fdp.exe"' in line
