"""Teams, Mattermost and Discord payloads, rendered by each service's own renderer.

Every field that carries event or API data (title, text, fact names and values, link label)
is tried with every hostile and ordinary value of :mod:`tests.render_corpus`: it must show as
typed and nothing more. The renderers (``tests/renderers``, installed by ``make test``):

- Teams: the official Adaptive Cards JavaScript SDK parses each card with validation on and
  renders it (jsdom), with markdown-it as its Markdown processor: linkify on, fuzzy links off
  (bare host names stay text on purpose, as in ``test_chat_escaping.py``).
- Mattermost: marked 0.3.6, the npm release whose inline lexer the web app's fork follows, set
  up as the web app sets up its fork (``sanitize``, ``gfm``, ``tables``, no ``mangle``, no
  ``breaks``), with the fork's inline escapes (none for ``:`` ``<`` ``"`` ``&``...), its autolink,
  text and URL rules and scheme filter, and what the web app does after Markdown (mentions,
  ~channels, #hashtags, e-mail links, emoticons). Field titles are shown without Markdown and
  an attachment title with a ``title_link`` as plain text, as the web app does. Differences
  that remain: the fork's block grammar (its list-item and table fixes), its emphasis rule for
  punctuation, LaTeX blocks, the mobile app (CommonMark: it honours every escape the web app
  does, and decodes the same character references), emoticons beyond the common faces.
- Discord: discord-markdown (simple-markdown with Discord's rules), embed rules (masked
  links), plus the headings, subtext and lists Discord added since that package.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.chat_helpers import build_sink
from tests.chat_messages import ONE_PER_SEVERITY
from tests.render_corpus import FIELDS, Part, check_field, render_payloads
from tests.service_renderers import ServiceRenderers, service_renderers


@pytest.fixture(scope="module")
def renderers() -> ServiceRenderers:
    return service_renderers()


def teams_parts(payload: dict[str, Any]) -> list[Part]:
    return [Part("teams", payload["attachments"][0]["content"])]


# What the server stores from a webhook: Slack's "<!channel>" becomes "@channel" in the text,
# title and field values of attachments (ExpandAnnouncement), and Slack links "<url|label>"
# become Markdown links in the post text, attachment text and field values.
SLACK_LINK = re.compile(r"<([^\n<|>]+)\|([^\n>]+)>")


def announced(text: str) -> str:
    return text.replace("<!channel>", "@channel")


def stored(text: str) -> str:
    return SLACK_LINK.sub(r"[\2](\1)", announced(text))


def mattermost_parts(payload: dict[str, Any]) -> list[Part]:
    parts = [Part("mattermost", stored(payload["text"]))]
    for attachment in payload.get("attachments", []):
        title = announced(attachment["title"])
        if attachment.get("title_link"):  # shown as the link's plain text
            parts.append(Part(None, title, link=attachment["title_link"]))
        else:
            parts.append(Part("mattermost-title", title))
        if "text" in attachment:
            parts.append(Part("mattermost", stored(attachment["text"])))
        for field in attachment.get("fields", []):
            value = stored(field["value"])
            parts += [Part("mattermost-plain", field["title"]), Part("mattermost", value)]
    return parts


def discord_parts(payload: dict[str, Any]) -> list[Part]:
    parts = [Part("discord", payload["content"])]
    for embed in payload["embeds"]:
        parts.append(Part("discord", embed["title"], link=embed.get("url")))
        if "description" in embed:
            parts.append(Part("discord", embed["description"]))
        for field in embed.get("fields", []):
            parts += [Part("discord", field["name"]), Part("discord", field["value"])]
        parts.append(Part(None, embed["footer"]["text"]))  # footers are plain text
    return parts


def teams_breaks_url_schemes(name: str) -> bool:
    # Teams' own clients do not render with one known Markdown: a URL scheme keeps its
    # zero-width break there (defuse_urls); addresses, paths and times do not get one.
    return name == "ordinary:url-with-underscores"


@pytest.mark.parametrize("field", FIELDS)
def test_teams_shows_every_value_as_typed(renderers: ServiceRenderers, field: str) -> None:
    check_field(renderers, "teams", field, teams_parts, teams_breaks_url_schemes)


@pytest.mark.parametrize("field", FIELDS)
def test_mattermost_shows_every_value_as_typed(renderers: ServiceRenderers, field: str) -> None:
    check_field(renderers, "mattermost", field, mattermost_parts)


@pytest.mark.parametrize("field", FIELDS)
def test_discord_shows_every_value_as_typed(renderers: ServiceRenderers, field: str) -> None:
    check_field(renderers, "discord", field, discord_parts)


@pytest.mark.parametrize("sink_type", ["mattermost", "discord"])
def test_each_severity_has_its_own_word_and_colour(
    renderers: ServiceRenderers, sink_type: str
) -> None:
    parts = mattermost_parts if sink_type == "mattermost" else discord_parts
    payloads = [build_sink(sink_type).render(message) for message in ONE_PER_SEVERITY]
    headlines = [r.text.split("\n")[0] for r in render_payloads(renderers, payloads, parts)]
    words = [headline.split(" · ")[0].split()[-1] for headline in headlines]
    assert words == [message.severity.value.upper() for message in ONE_PER_SEVERITY]
    if sink_type == "mattermost":
        colours = {payload["attachments"][0]["color"] for payload in payloads}
    else:
        colours = {payload["embeds"][0]["color"] for payload in payloads}
    assert len(colours) == len(payloads)
