"""The README's table of sink options states each sink type's real defaults."""

from __future__ import annotations

from pathlib import Path

from notirouter.api.manager import collect_types, make_plugin_manager

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_table() -> dict[str, list[str]]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| type | `rate_limit`"))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def shown(value: float | None) -> str:
    return "none" if value is None else f"{value:g}"


def test_every_built_in_sink_type_has_its_true_defaults_in_the_table() -> None:
    types = collect_types(make_plugin_manager()).sinks
    table = readme_table()
    built_in = {name for name, cls in types.items() if cls.__module__.startswith("notirouter.")}
    assert {"log", "webhook", "teams", "mattermost", "slack", "discord", "email"} <= built_in
    assert built_in <= set(table)
    for name in built_in:
        cls = types[name]
        fields = cls.Options.model_fields
        assert table[name] == [
            shown(cls.default_rate_limit),
            shown(fields["burst"].default),
            shown(fields["timeout"].default),
            shown(fields["concurrency"].default),
        ], name
