"""The chat services' own renderers (Node.js, ``tests/renderers``), for conformance tests.

One Node process serves the whole test session: :func:`service_renderers` starts it on first use
and every call sends a batch of values down the same pipe. ``make test`` installs the packages
(``npm ci``); without ``node`` or without them the tests skip with the reason, and fail in CI
(:func:`tests.services.service_missing`).

:class:`Rendered` reads the HTML back: the visible text, the links, images, mentions and the
elements that style text, so a test can say what a reader sees and what they can click.
"""

from __future__ import annotations

import atexit
import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from tests.services import service_missing

RENDERERS = Path(__file__).resolve().parent / "renderers"
SCRIPT = RENDERERS / "render.js"
ANSWER_TIMEOUT = 60.0

# Elements after which a reader sees a line break.
BLOCKS = frozenset(
    {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table"}
    | {"blockquote", "pre", "button", "section"}
)
VOID = frozenset(["br", "img", "hr", "input", "meta", "link"])


@dataclass
class Element:
    """One element of the rendered HTML, with the text it shows."""

    tag: str
    attrs: dict[str, str]
    text: str = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


@dataclass
class Rendered:
    """What a service showed for one value: its HTML, read back."""

    html: str
    errors: list[str] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)
    text: str = ""

    def tags(self, *names: str) -> list[Element]:
        return [e for e in self.elements if e.tag in names]

    @property
    def links(self) -> list[str]:
        """Every clickable target: ``<a href>`` and Adaptive Card buttons that open a URL."""
        return [e.attrs.get("href", "") for e in self.tags("a")]

    @property
    def mentions(self) -> list[Element]:
        """Mentions, channel links, hashtags and emoji the service made out of text."""
        return [
            e
            for e in self.elements
            if {"mention", "d-mention", "mention-link"} & e.classes
            or {"data-mention", "data-hashtag", "data-emoticon"} & set(e.attrs)
        ]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.open: list[Element] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag == "br":
            self._add("\n")
        elif tag not in VOID:
            self.open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index].tag == tag:
                del self.open[index:]
                break
        if tag in BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        self._add(data)

    def _add(self, data: str) -> None:
        self.parts.append(data)
        for element in self.open:
            element.text += data


def read_html(html: str, errors: Sequence[str] = ()) -> Rendered:
    """Parse a renderer's HTML into what a reader sees."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return Rendered(html, list(errors), reader.elements, "".join(reader.parts))


class _NodeRenderer:
    """The long-running ``node render.js``: JSON requests in, JSON answers out, in order."""

    def __init__(self, node: str) -> None:
        self.process = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=RENDERERS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def _write(self, lines: list[str]) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write("".join(lines))
            self.process.stdin.flush()
        except BrokenPipeError:  # the process died: the reader reports it
            pass

    def ask(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in requests]
        with self.lock:
            # Written from a thread so that a big batch cannot fill both pipes at once.
            writer = threading.Thread(target=self._write, args=(lines,), daemon=True)
            writer.start()
            answers: list[dict[str, Any]] = []
            for _ in requests:
                line = self.answers.get(timeout=ANSWER_TIMEOUT)
                if line is None:
                    raise RuntimeError(f"the renderer process stopped: {self.stderr()}")
                answers.append(json.loads(line))
            writer.join(timeout=ANSWER_TIMEOUT)
        return answers

    def stderr(self) -> str:
        self.close()
        assert self.process.stderr is not None
        return self.process.stderr.read()[-2000:]

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class ServiceRenderers:
    """Renders values with the services' own renderers, many per round trip."""

    def __init__(self, node: _NodeRenderer) -> None:
        self._node = node

    def render_many(self, kind: str, inputs: Sequence[Any]) -> list[Rendered]:
        """Each input rendered by ``kind`` (see ``tests/renderers/render.js``)."""
        return self.render_requests([(kind, value) for value in inputs])

    def render_requests(self, requests: Sequence[tuple[str, Any]]) -> list[Rendered]:
        """Each ``(kind, input)`` rendered, all in one round trip."""
        answers = self._node.ask([{"kind": kind, "input": value} for kind, value in requests])
        results = []
        for (kind, value), answer in zip(requests, answers, strict=True):
            if "error" in answer:
                raise AssertionError(f"{kind} could not render {value!r}: {answer['error']}")
            results.append(read_html(answer["html"], answer.get("errors", ())))
        return results

    def render(self, kind: str, value: Any) -> Rendered:
        return self.render_many(kind, [value])[0]


@cache
def _start() -> ServiceRenderers | str:
    node = shutil.which("node")
    if node is None:
        return "node is not installed (Node.js runs the services' renderers)"
    missing = [
        name
        for name in ("adaptivecards", "markdown-it", "jsdom", "marked", "discord-markdown")
        if not (RENDERERS / "node_modules" / name / "package.json").is_file()
    ]
    if missing:
        return f"{', '.join(missing)} not installed in {RENDERERS} (make test runs npm ci there)"
    process = _NodeRenderer(node)
    atexit.register(process.close)
    renderers = ServiceRenderers(process)
    try:  # a first round trip shows that the packages load
        renderers.render("discord", "ok")
    except (RuntimeError, queue.Empty) as error:
        return f"the renderer does not start: {error}"
    return renderers


def service_renderers() -> ServiceRenderers:
    """The session's renderers; skips (or fails in CI) the calling test when they are missing."""
    started = _start()
    if isinstance(started, str):
        service_missing(started)
    return started
