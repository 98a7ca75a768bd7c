"""Every notirouter config in the README passes ``notirouter check``; every copied file is current.

A YAML block of the README is one of:

- a whole config (it has ``hooks:``): checked as it is, alone;
- a part of one (its top-level keys are config sections, e.g. only ``routes:``): each of its
  sections replaces that section of a minimal base, except ``sinks:``, which adds to it;
- sink entries (``name: {type: ..., ...}``, as in the sink reference): added to the base's sinks.

The base is the README's own: its sink entries, its ``enrichers:`` part, a hook and a catch-all
route, so a route example naming ``soc-teams`` is checked against the README's ``soc-teams``.
A YAML block that is none of these fails the test: nothing is skipped silently. The variables
the snippets use are set to values of the right shape (VARIABLES).

A block right after ``<!-- file: PATH -->`` is a copy of that file (deploy/, examples/): it must
be identical to it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from notirouter.cli import main
from notirouter.config.models import AppConfig

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(
    r"(?:<!-- file: (?P<file>\S+) -->\n)?^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S
)
SECTIONS = {field.alias or name for name, field in AppConfig.model_fields.items()}
VARIABLES = {
    "NOTIROUTER_HOOK_TOKEN": "readme-hook-token-0123456789abcdef",
    "SEKOIA_API_KEY": "readme-sekoia-api-key",
    "SEKOIA_REGION": "fra2",
    "TEAMS_WEBHOOK_URL": "https://prod-00.westeurope.logic.azure.com/workflows/0a1b/triggers/manual/paths/invoke?sig=x",
    "TEAMS_CLIENT_SECRET": "readme-teams-client-secret",
    "MATTERMOST_WEBHOOK_URL": "https://mattermost.example.com/hooks/xyz0123456789",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
    "SLACK_BOT_TOKEN": "xoxb-0000-0000-XXXXXXXX",
    "SLACK_SIGNING_SECRET": "readme-slack-signing-secret",
    "NOTIROUTER_MATTERMOST_SECRET": "readme-mattermost-button-secret",
    "MATTERMOST_BOT_TOKEN": "mmbottoken0000000000000000",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123456789012345678/abcdefABCDEF",
    "FORWARD_URL": "https://intake.example.com/notify",
    "FORWARD_TOKEN": "readme-forward-token",
    "SMTP_USER": "notirouter",
    "SMTP_PASSWORD": "readme-smtp-password",
    "NOTIROUTER_DB_PASSWORD": "readme-db-password",
}


@dataclass(frozen=True)
class Block:
    """A fenced block of the README."""

    line: int
    lang: str
    body: str
    file: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang or 'text'} block)"


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(text.count("\n", 0, m.start("body")) + 1, m["lang"], m["body"], m["file"])
        for m in FENCE.finditer(text)
    ]


def kind(block: Block) -> str:
    """``whole``, ``part`` or ``sinks`` for a notirouter config block; fails on anything else."""
    data = yaml.safe_load(block.body)
    assert isinstance(data, dict) and data, f"{block}: a YAML block that is not a mapping"
    if "hooks" in data:
        return "whole"
    if set(data) <= SECTIONS:
        return "part"
    if all(isinstance(v, dict) and isinstance(v.get("type"), str) for v in data.values()):
        return "sinks"
    raise AssertionError(f"{block}: a YAML block that is no notirouter config: {sorted(data)}")


def config_blocks() -> list[Block]:
    return [b for b in blocks() if b.lang == "yaml"]


def base() -> dict[str, Any]:
    """The minimal config a part is checked in, made of the README's own definitions."""
    sinks: dict[str, Any] = {"console": {"type": "log"}}
    enrichers: dict[str, Any] = {}
    for block in config_blocks():
        data = yaml.safe_load(block.body)
        if kind(block) == "sinks":
            sinks.update(data)
        elif kind(block) == "part" and set(data) == {"enrichers"}:
            enrichers.update(data["enrichers"])
    return {
        "hooks": [{"name": "sekoia", "token": "${NOTIROUTER_HOOK_TOKEN}"}],
        "enrichers": enrichers,
        "sinks": sinks,
        "routes": [{"name": "catch-all", "sinks": ["console"]}],
    }


def completed(block: Block) -> str:
    """The config text ``notirouter check`` reads for ``block``."""
    how = kind(block)
    if how == "whole":
        return block.body
    config, data = copy.deepcopy(base()), yaml.safe_load(block.body)
    if how == "sinks":
        data = {"sinks": data}
    for section, value in data.items():
        if section == "sinks":
            config["sinks"].update(value)
        else:
            config[section] = value
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def test_the_readme_has_whole_and_partial_configs() -> None:
    kinds = [kind(b) for b in config_blocks()]
    assert kinds.count("whole") >= 2  # Configuration, and the production config
    assert "part" in kinds and "sinks" in kinds


@pytest.mark.parametrize("block", config_blocks(), ids=str)
def test_notirouter_check_passes_on_every_readme_config(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in VARIABLES.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "notirouter.yaml"
    config.write_text(completed(block), encoding="utf-8")
    code = main(["check", "-c", str(config)])
    out, err = capsys.readouterr()
    assert code == 0, f"{block} ({kind(block)}):\n{err}\n--- checked as:\n{config.read_text()}"
    assert ": OK:" in out


def test_every_copied_file_in_the_readme_is_identical_to_the_file() -> None:
    copies = [b for b in blocks() if b.file]
    for block in copies:
        source = ROOT / block.file  # type: ignore[operator]
        assert source.is_file(), f"{block}: {block.file} does not exist"
        assert block.body == source.read_text(encoding="utf-8"), (
            f"{block} differs from {block.file}: update the README's copy"
        )
    copied = {b.file for b in copies}
    for promised in ("deploy/nginx/notirouter.conf", "deploy/caddy/Caddyfile"):
        assert promised in copied, f"the README has no copy of {promised}"


def test_every_file_the_readme_names_in_deploy_and_examples_exists() -> None:
    text = README.read_text(encoding="utf-8")
    named = {m.rstrip(".") for m in re.findall(r"\b(?:deploy|examples)/[\w./*-]+", text)}
    assert "deploy/systemd/notirouter.service" in named
    for path in sorted(named):
        if (ROOT / f"{path}.example").is_file():
            continue  # made by the user from its example (deploy/notirouter.env)
        assert list(ROOT.glob(path)), f"the README names {path}, which does not exist"
    # The Sekoia.io walk-through names example events by file name alone.
    section = text.split("## Connect Sekoia.io", 1)[1].split("\n## ", 1)[0]
    events = set(re.findall(r"`([\w*-]+\.json)`", section))
    assert events, "the walk-through names no example event"
    for name in sorted(events):
        assert list((ROOT / "examples" / "events").glob(name)), f"no example event {name}"
