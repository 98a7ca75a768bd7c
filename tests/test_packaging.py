"""The distribution ships every package: a plain `pip install .` must work, not only `-e`."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _packages_under(folder: Path, name: str) -> set[str]:
    return {
        ".".join((name, *init.parent.relative_to(folder).parts))
        for init in folder.rglob("__init__.py")
    }


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = _packages_under(ROOT / "notirouter", "notirouter")
    found |= _packages_under(ROOT / "plugins", "notirouter.plugins")
    missing = found - set(config["packages"])
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"
    assert config["package-dir"]["notirouter.plugins"] == "plugins"


def test_email_templates_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "notirouter.plugins.templates" in config["packages"]
    patterns = config["package-data"]["notirouter.plugins.templates"]
    for template in (ROOT / "plugins" / "templates").iterdir():
        assert any(template.match(pattern) for pattern in patterns), template.name
