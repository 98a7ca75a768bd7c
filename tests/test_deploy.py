"""deploy/: the systemd unit, the container recipe, the env file and the production configs.

Tools that may be absent (systemd-analyze, nginx, caddy) are used when installed and the test
skips with the reason otherwise; no test needs docker or the network.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from notirouter.config.models import QueueConfig
from tests.serving import serve

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "notirouter.service"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
COMPOSE = DEPLOY / "container" / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "notirouter.env.example"
INSTALLED = "/opt/notirouter/bin/notirouter"  # where the unit expects the installed command


def env_file(path: Path) -> dict[str, str]:
    """VARIABLE=value lines, read literally as systemd's EnvironmentFile= and compose do."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def unit_settings(path: Path) -> dict[str, list[str]]:
    """``Key=value`` settings of a unit file (a key may repeat), sections ignored."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def check(config: Path, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``notirouter check -c CONFIG`` with exactly ``environ`` (plus PATH) as its environment."""
    return subprocess.run(
        [sys.executable, "-m", "notirouter", "check", "-c", str(config)],
        env={"PATH": os.environ.get("PATH", ""), **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- systemd -------------------------------------------------------------------------------


def test_the_unit_is_hardened_and_keeps_the_queue_in_its_state_directory() -> None:
    unit = unit_settings(UNIT)
    assert unit["DynamicUser"] == ["yes"]
    assert unit["StateDirectory"] == ["notirouter"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["Restart"] == ["always"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["LimitNOFILE"] == ["65536"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ExecStart"] == [f"{INSTALLED} serve -c /etc/notirouter/notirouter.yaml"]
    # The queue is written where StateDirectory= makes the only writable place.
    assert "NOTIROUTER_DB=/var/lib/notirouter/notirouter.db" in unit["Environment"]
    assert unit["EnvironmentFile"] == ["/etc/notirouter/notirouter.env"]


def _verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's command (systemd-analyze checks
    that the executable exists; /opt/notirouter exists only on a deployed machine)."""
    command = Path(sys.executable).with_name("notirouter")
    assert command.exists(), command
    unit = tmp_path / "notirouter.service"
    text = UNIT.read_text(encoding="utf-8")
    assert text.count(INSTALLED) == 1
    unit.write_text(text.replace(INSTALLED, str(command)), encoding="utf-8")
    return unit


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (not a systemd machine)")
    unit = _verifiable_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 even on an unknown key or a bad value: any message is a finding.
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (not a systemd machine)")
    unit = _verifiable_unit(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze cannot rate a unit file offline (systemd < 250)")
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert exposure is not None, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {exposure.group(1)} above 2.0"


# -- the production config and its env file --------------------------------------------------


def test_the_production_config_passes_check_with_the_env_file_example() -> None:
    result = check(DEPLOY / "notirouter.yaml", env_file(ENV_EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "queue sqlite at /var/lib/notirouter/notirouter.db" in result.stdout


def test_the_production_config_names_each_secret_it_lacks() -> None:
    result = check(DEPLOY / "notirouter.yaml", {})
    assert result.returncode == 1
    for variable in ("NOTIROUTER_HOOK_TOKEN", "SEKOIA_API_KEY", "TEAMS_WEBHOOK_URL"):
        assert variable in result.stderr


def _postgres_backend_available() -> bool:
    try:
        QueueConfig.model_validate({"backend": "postgres", "url": "postgresql://u:p@db/n"})
    except ValidationError:
        return False
    return True


def test_the_compose_config_passes_check_with_the_env_file_example() -> None:
    if not _postgres_backend_available():
        pytest.skip("this build has no PostgreSQL queue backend (queue.backend: postgres)")
    environ = env_file(ENV_EXAMPLE)
    environ["NOTIROUTER_QUEUE_URL"] = "postgresql://notirouter:secret@postgres:5432/notirouter"
    result = check(DEPLOY / "container" / "notirouter.postgres.yaml", environ)
    assert result.returncode == 0, result.stderr
    assert "secret" not in result.stdout + result.stderr


# -- the container recipe ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            found.append((instruction.upper(), arguments.strip()))
    return found


def test_the_image_is_multi_stage_non_root_with_the_queue_on_a_volume() -> None:
    instructions = dockerfile_instructions()
    stages = [args for name, args in instructions if name == "FROM"]
    assert len(stages) == 2 and stages[0].endswith(" AS build")
    assert ("COPY", "--from=build /opt/notirouter /opt/notirouter") in instructions
    (user,) = [args for name, args in instructions if name == "USER"]
    assert user.split(":")[0] not in ("root", "0")
    runtime = instructions[[name for name, _ in instructions].index("FROM", 1) :]
    env = " ".join(args for name, args in runtime if name == "ENV")
    database = re.search(r"NOTIROUTER_DB=(\S+)", env)
    assert database is not None
    (volume,) = [json.loads(args) for name, args in runtime if name == "VOLUME"]
    assert os.path.dirname(database.group(1)) in volume
    # Every file the image copies from the source tree exists and is in the build context.
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for name, args in instructions:
        if name == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert f"!{source}" in ignore.splitlines(), f"{source} is not in the context"


def image_environment() -> dict[str, str]:
    """The ``ENV`` of the runtime stage, as ``docker run`` gives it to notirouter."""
    instructions = dockerfile_instructions()
    runtime = instructions[[name for name, _ in instructions].index("FROM", 1) :]
    found = {}
    for name, args in runtime:
        if name == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                found[key] = value
    return found


def test_the_image_config_passes_check_in_the_image_environment_and_queues_on_the_volume() -> None:
    environ = {k: v for k, v in image_environment().items() if "$" not in v}  # not PATH
    assert environ["NOTIROUTER_CONFIG"] == "/etc/notirouter/notirouter.yaml"
    assert ("COPY", "deploy/notirouter.yaml /etc/notirouter/notirouter.yaml") in (
        dockerfile_instructions()
    )
    result = subprocess.run(
        [sys.executable, "-m", "notirouter", "check", "-c", str(DEPLOY / "notirouter.yaml")],
        env={"PATH": os.environ.get("PATH", ""), **env_file(ENV_EXAMPLE), **environ},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[0]  # then a line per sink on what it can do
    assert summary.endswith("queue sqlite at /var/lib/notirouter/notirouter.db")
    (volume,) = [json.loads(a) for n, a in dockerfile_instructions() if n == "VOLUME"]
    assert volume == ["/var/lib/notirouter"]


def _healthcheck() -> list[str]:
    (healthcheck,) = [args for name, args in dockerfile_instructions() if name == "HEALTHCHECK"]
    command: list[str] = json.loads(healthcheck.split(" CMD ", 1)[1])
    return command


def test_the_healthcheck_asks_readyz_with_python_not_curl() -> None:
    command = _healthcheck()
    assert command[0] == "python"
    assert "/readyz" in command[-1]
    assert "curl" not in " ".join(command)


async def test_the_healthcheck_command_passes_on_a_ready_server_and_fails_without_one(
    tmp_path: Path,
) -> None:
    config = tmp_path / "notirouter.yaml"
    config.write_text(
        f'queue: {{path: "{tmp_path / "q.db"}"}}\nsinks: {{console: {{type: log}}}}\n'
    )
    command = [sys.executable, *_healthcheck()[1:]]

    def probe(port: int) -> int:
        environ = {**os.environ, "NOTIROUTER_PORT": str(port)}
        return subprocess.run(command, env=environ, capture_output=True, timeout=30).returncode

    async with serve(config) as served:
        port = int(served.url.rsplit(":", 1)[1])
        assert await asyncio.to_thread(probe, port) == 0
    assert await asyncio.to_thread(probe, port) != 0  # nothing listens there any more


def test_compose_runs_notirouter_on_postgres_after_the_migration() -> None:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", "notirouter"}
    app, migrate = services["notirouter"], services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["build"] == {"context": "../..", "dockerfile": "deploy/container/Dockerfile"}
    assert app["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for service in (app, migrate):
        (mount,) = service["volumes"]
        source, target, _ = mount.split(":")
        assert (COMPOSE.parent / source).exists()
        assert target == "/etc/notirouter/notirouter.yaml"
        (env,) = service["env_file"]
        assert (COMPOSE.parent / f"{env}.example").resolve() == ENV_EXAMPLE
        assert service["environment"]["NOTIROUTER_QUEUE_URL"].startswith("postgresql://")
    assert app["ports"] == ["127.0.0.1:8000:8000"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    # Every variable compose interpolates is in the env file example.
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text(encoding="utf-8")))
    assert used <= set(env_file(ENV_EXAMPLE))
