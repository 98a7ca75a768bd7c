"""The README's chat sink samples are exactly what the sinks send (datasette-style)."""

from __future__ import annotations

from tests.readme_samples import README, SAMPLES, render_sample, samples_in


def test_every_chat_sink_has_a_sample_in_the_readme() -> None:
    found = samples_in(README.read_text(encoding="utf-8"))
    assert sorted(found) == sorted(SAMPLES)
    for sink in ("teams", "mattermost", "slack", "discord"):
        assert f"\n### {sink}\n" in README.read_text(encoding="utf-8")


def test_readme_samples_are_current() -> None:
    found = samples_in(README.read_text(encoding="utf-8"))
    for name, block in found.items():
        assert block == render_sample(name), (
            f"the README sample '{name}' is stale: run `python -m tests.readme_samples`"
        )
