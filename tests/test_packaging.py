"""The distribution ships every package: a plain `pip install .` must work, not only `-e`;
the built wheel, installed in a fresh environment outside the clone, runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

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
    assert "notirouter.plugins.email.templates" in config["packages"]
    patterns = config["package-data"]["notirouter.plugins.email.templates"]
    for template in (ROOT / "plugins" / "email" / "templates").iterdir():
        assert any(template.match(pattern) for pattern in patterns), template.name


# -- the built wheel, installed outside the clone ------------------------------------------------

SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
OURS = ("notirouter", "__editable__", "_distutils_hack", "distutils-precedence")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the clone with only the built wheel installed in it.

    The wheel is built from a copy of what the distribution is made of (as the container image
    does). Its dependencies come from this environment's site-packages through a .pth file, so
    the test needs no network, but nothing of notirouter itself does: the package, its
    metadata and the editable install's finder are left out.
    """
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("notirouter", "plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    dist = work / "dist"
    run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(source)])
    (wheel,) = dist.glob("notirouter-*.whl")
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)])
    deps = work / "deps"
    deps.mkdir()
    for entry in SITE_PACKAGES.iterdir():
        if not entry.name.startswith(OURS) and not entry.name.endswith(".pth"):
            (deps / entry.name).symlink_to(entry)
    target = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    )
    (target / "dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")
    return venv


def run(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip()


def test_the_installed_wheel_runs_check_and_route_outside_the_clone(
    installed: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "site"
    outside.mkdir()
    assert ROOT not in outside.parents
    python, command = installed / "bin" / "python", installed / "bin" / "notirouter"
    where = run([str(python), "-c", "import notirouter.plugins as p; print(p.__file__)"], outside)
    assert Path(where).is_relative_to(installed), where
    config = outside / "notirouter.yaml"
    config.write_text(
        "hooks: [{name: sekoia, token: wheel-test-token-0123456789}]\n"
        "queue: {path: ./queue/notirouter.db}\n"
        "sinks:\n"
        "  console: {type: log}\n"
        "  mail: {type: email, host: 127.0.0.1, from: a@example.com, to: [b@example.com]}\n"
        "routes: [{name: all, sinks: [console, mail]}]\n",
        encoding="utf-8",
    )
    summary = run([str(command), "check", "-c", str(config)], outside).splitlines()[0]
    assert summary == (
        f"{config}: OK: 1 hook, 2 sinks, 0 enrichers, 1 route, "
        f"queue sqlite at {outside / 'queue' / 'notirouter.db'}"
    )
    shutil.copy(ROOT / "examples" / "events" / "alert-created.json", outside / "event.json")
    report = json.loads(
        run([str(command), "route", "-c", str(config), "event.json", "--json"], outside)
    )
    rendered = {d["sink"]: d["payload"] for d in report["deliveries"]}
    assert rendered["console"]["title"] == "New alert: ALEY4fqz8moo"
    # The email sink renders from the HTML and text templates: package data of the wheel.
    assert "New alert: ALEY4fqz8moo" in rendered["mail"]["html"], rendered["mail"]
    assert "New alert: ALEY4fqz8moo" in rendered["mail"]["text"]
