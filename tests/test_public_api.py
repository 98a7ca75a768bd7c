"""The public plugin API is exactly ``notirouter.__all__``, and the built-ins use nothing else.

A third-party plugin may import whatever ``__all__`` lists and nothing more is promised; the
first-party plugins in ``plugins/`` are held to the same rule, so they prove the API suffices.
Changing the list below is changing the public API: do it on purpose, with the README.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import notirouter

PUBLIC_API = [
    "CHANGED_FACT",
    "MATTERMOST_ADDRESS",
    "OPERATIONAL_EVENT_TYPE",
    "TRUNCATION_MARKER",
    "ActionReport",
    "ActionsOptions",
    "AlertWriter",
    "ChangeFeed",
    "ChatAction",
    "Click",
    "ConversationMode",
    "Digest",
    "DigestItem",
    "Enricher",
    "EnricherContext",
    "EnricherHealth",
    "EnricherOptions",
    "EnrichmentError",
    "Event",
    "Fact",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "HttpSink",
    "InteractiveSink",
    "Message",
    "OperationalAction",
    "Outcome",
    "ReconciledChange",
    "SecretUrl",
    "SendResult",
    "Severity",
    "Sink",
    "SinkContext",
    "SinkOptions",
    "Source",
    "StormOptions",
    "TemplateText",
    "TransportError",
    "__version__",
    "classify_status",
    "defuse_urls",
    "describe_change",
    "escape_discord",
    "escape_html",
    "escape_markdown",
    "escape_mattermost",
    "escape_mattermost_plain",
    "escape_plain",
    "escape_slack",
    "escape_teams",
    "escape_teams_plain",
    "hookimpl",
    "json_bytes",
    "make_environment",
    "neutralise_at_mentions",
    "neutralise_mentions",
    "parse_retry_after",
    "reveal_invisible",
    "truncate",
    "truncate_utf8",
]

PLUGINS = Path(__file__).resolve().parent.parent / "plugins"


def test_all_is_the_pinned_public_api() -> None:
    assert sorted(notirouter.__all__) == sorted(PUBLIC_API)
    assert len(set(notirouter.__all__)) == len(notirouter.__all__)


@pytest.mark.parametrize("name", PUBLIC_API)
def test_every_public_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from notirouter import {name}", namespace)
    assert namespace[name] is getattr(notirouter, name)


def _imports_outside_the_api(path: Path) -> list[str]:
    """Each import in ``path`` of a notirouter module other than the package itself."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("notirouter"):
                if node.module != "notirouter":
                    found.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
            elif node.level > 1:
                found.append(f"{path.name}:{node.lineno}: relative import out of its family")
        elif isinstance(node, ast.Import):
            found.extend(
                f"{path.name}:{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.startswith("notirouter.")
            )
    return found


@pytest.mark.parametrize(
    "path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(PLUGINS))
)
def test_built_in_plugins_import_only_the_public_api(path: Path) -> None:
    assert _imports_outside_the_api(path) == []


def test_the_import_check_catches_a_private_import(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "from notirouter import Sink\n"
        "from notirouter.routing.pipeline import Pipeline\n"
        "import notirouter.queue\n"
        "from ..other import x\n"
        "from .sibling import y\n"
    )
    assert _imports_outside_the_api(plugin) == [
        "plugin.py:2: from notirouter.routing.pipeline import ...",
        "plugin.py:3: import notirouter.queue",
        "plugin.py:4: relative import out of its family",
    ]
