"""deploy/nginx and deploy/caddy: valid configs that keep the hook token out of the proxy's logs.

With nginx installed, the real nginx serves deploy/nginx/notirouter.conf over TLS in front of a
real notirouter, on loopback; only what a test machine must change is changed (listen address,
certificate and log paths, the upstream port). With caddy installed, ``caddy validate`` checks
the Caddyfile, and the real Caddy serves it (its own CA, ``tls internal``, instead of a public
certificate) in front of a real notirouter. Without them these tests skip with the reason (the
README's copies are checked against these files in test_readme_configs.py either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from tests.conftest import TOKEN
from tests.serve_process import free_port
from tests.serving import serve

ROOT = Path(__file__).resolve().parents[1]
NGINX_CONF = ROOT / "deploy" / "nginx" / "notirouter.conf"
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
EVENT = ROOT / "examples" / "events" / "alert-created.json"


def replace_once(text: str, old: str, new: str, times: int = 1) -> str:
    assert text.count(old) == times, f"expected {old!r} {times} times in {NGINX_CONF.name}"
    return text.replace(old, new)


def certificates(tmp_path: Path) -> ssl.SSLContext:
    """A test CA and the site's certificate in ``tmp_path``; a client context trusting it."""
    ca = trustme.CA()
    leaf = ca.issue_cert("notirouter.example.com", "127.0.0.1")
    leaf.private_key_pem.write_to_path(tmp_path / "key.pem")
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return client


def nginx_site(tmp_path: Path, listen: int, upstream: int) -> Path:
    """deploy/nginx/notirouter.conf in a minimal nginx.conf, made to run on this machine."""
    if not (tmp_path / "cert.pem").exists():
        certificates(tmp_path)
    site = NGINX_CONF.read_text(encoding="utf-8")
    site = replace_once(site, "listen 443 ssl;", f"listen 127.0.0.1:{listen} ssl;")
    site = replace_once(site, "listen [::]:443 ssl;\n", "")
    site = replace_once(
        site,
        "/etc/letsencrypt/live/notirouter.example.com/fullchain.pem",
        str(tmp_path / "cert.pem"),
    )
    site = replace_once(
        site,
        "/etc/letsencrypt/live/notirouter.example.com/privkey.pem",
        str(tmp_path / "key.pem"),
    )
    site = replace_once(site, "/var/log/nginx/notirouter.", f"{tmp_path}/notirouter.", 2)
    site = replace_once(site, "http://127.0.0.1:8000;", f"http://127.0.0.1:{upstream};")
    (tmp_path / "notirouter.conf").write_text(site, encoding="utf-8")
    main = tmp_path / "nginx.conf"
    temp = "\n".join(
        f"  {kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\n"
        f"error_log {tmp_path}/main-error.log info;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        f"  access_log {tmp_path}/main-access.log;\n{temp}\n"
        f"  include {tmp_path}/notirouter.conf;\n"
        "}\n",
        encoding="utf-8",
    )
    return main


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def test_nginx_accepts_the_site(tmp_path: Path) -> None:
    need("nginx")
    main = nginx_site(tmp_path, free_port(), free_port())
    result = subprocess.run(
        ["nginx", "-t", "-e", "stderr", "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@contextlib.contextmanager
def running_nginx(tmp_path: Path, upstream: int) -> Iterator[int]:
    """The real nginx serving the site in front of ``upstream``; yields its TLS port."""
    listen = free_port()
    main = nginx_site(tmp_path, listen, upstream)
    process = subprocess.Popen(
        ["nginx", "-e", "stderr", "-p", str(tmp_path), "-c", str(main), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", listen)) == 0:
                    break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)
        yield listen
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_through_nginx_an_event_is_accepted_and_the_token_never_logged(
    tmp_path: Path,
) -> None:
    need("nginx")
    config = tmp_path / "notirouter.yaml"
    config.write_text(
        f"hooks: [{{name: sekoia, token: {TOKEN}}}]\n"
        f'queue: {{path: "{tmp_path / "q.db"}"}}\n'
        "sinks: {console: {type: log}}\n"
        "routes: [{name: all, sinks: [console]}]\n",
        encoding="utf-8",
    )
    body = EVENT.read_bytes()
    headers = {"Content-Type": "application/json", "Host": "notirouter.example.com"}
    async with httpx.AsyncClient(verify=certificates(tmp_path), timeout=10) as client:
        served = serve(config)
        upstream = await served.__aenter__()
        port = int(upstream.url.rsplit(":", 1)[1])
        try:
            with running_nginx(tmp_path, port) as listen:
                url = f"https://127.0.0.1:{listen}/hooks/{TOKEN}"
                accepted = await client.post(url, content=body, headers=headers)
                health = await client.get(f"https://127.0.0.1:{listen}/readyz", headers=headers)
                await served.__aexit__(None, None, None)
                served = None
                down = await client.post(url, content=body, headers=headers)
                await wait_for_log(
                    tmp_path / "notirouter.access.log",
                    lambda text: len(text.splitlines()) >= 3,
                    "line for each of the three requests",
                )
        finally:
            if served is not None:
                await served.__aexit__(None, None, None)
    assert accepted.status_code == 202, accepted.text
    assert json.loads(accepted.text)["duplicate"] is False
    assert health.status_code == 404  # health and metrics stay on the loopback
    assert down.status_code == 502  # notirouter stopped: nginx cannot reach it
    access = (tmp_path / "notirouter.access.log").read_text(encoding="utf-8")
    assert access.count('"POST /hooks/*** HTTP/1.1" 202') == 1
    assert access.count('"POST /hooks/*** HTTP/1.1" 502') == 1
    assert '"GET /readyz HTTP/1.1" 404' in access
    logs = sorted(tmp_path.glob("*.log"))
    assert len(logs) == 4
    for log in logs:
        assert TOKEN not in log.read_text(encoding="utf-8"), f"the token is in {log.name}"


def test_caddy_validates_the_caddyfile() -> None:
    need("caddy")
    result = subprocess.run(
        ["caddy", "validate", "--adapter", "caddyfile", "--config", str(CADDYFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def caddy_site(tmp_path: Path, listen: int, upstream: int) -> Path:
    """deploy/caddy/Caddyfile made to run on this machine: no admin endpoint, its own CA
    (``tls internal``) and storage, free ports, logs and upstream in ``tmp_path``."""
    site = CADDYFILE.read_text(encoding="utf-8")
    local = (
        "{\n\tadmin off\n\tskip_install_trust\n"
        f"\tstorage file_system {tmp_path}/data\n"
        f"\thttp_port {free_port()}\n\thttps_port {listen}\n"
        f"\tlog default {{\n\t\toutput file {tmp_path}/caddy.log"
    )
    site = replace_once(site, "{\n\tlog default {", local)
    site = replace_once(
        site, "notirouter.example.com {", f"https://127.0.0.1:{listen} {{\n\ttls internal"
    )
    site = replace_once(site, "/var/log/caddy/", f"{tmp_path}/")
    site = replace_once(site, "reverse_proxy 127.0.0.1:8000", f"reverse_proxy 127.0.0.1:{upstream}")
    path = tmp_path / "Caddyfile"
    path.write_text(site, encoding="utf-8")
    return path


def tls_handshake(port: int, root: Path) -> ssl.SSLContext | None:
    """A context trusting ``root`` if a TLS handshake with 127.0.0.1:``port`` verifies with it
    now; ``None`` while the root is not written yet or the server has no certificate yet."""
    try:
        context = ssl.create_default_context(cafile=str(root))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            return context
    except (OSError, ssl.SSLError):  # not listening, no root yet, or an alert: not yet
        return None


async def wait_for_log(path: Path, done: Callable[[str], bool], what: str) -> str:
    """The log's text once ``done`` holds of it: a proxy writes its lines after answering."""
    deadline = time.monotonic() + 30
    while True:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if done(text):
            return text
        assert time.monotonic() < deadline, f"{path.name}: no {what} within 30 s:\n{text}"
        await asyncio.sleep(0.05)


@contextlib.contextmanager
def running_caddy(tmp_path: Path, upstream: int) -> Iterator[tuple[int, ssl.SSLContext]]:
    """The real Caddy serving the site in front of ``upstream``: its port, a trusting context."""
    listen = free_port()
    caddyfile = caddy_site(tmp_path, listen, upstream)
    process = subprocess.Popen(
        ["caddy", "run", "--adapter", "caddyfile", "--config", str(caddyfile)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
    )
    root = tmp_path / "data" / "pki" / "authorities" / "local" / "root.crt"
    try:
        # Listening is not ready: Caddy issues the site's certificate from its CA in the
        # background after it starts listening, and a handshake before that ends in a TLS
        # alert. Ready is a handshake that succeeds and verifies against Caddy's root.
        deadline = time.monotonic() + 60
        while (trust := tls_handshake(listen, root)) is None:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "caddy did not complete a TLS handshake"
            time.sleep(0.1)
        yield listen, trust
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_through_caddy_an_event_is_accepted_and_the_token_never_logged(
    tmp_path: Path,
) -> None:
    need("caddy")
    config = tmp_path / "notirouter.yaml"
    config.write_text(
        f"hooks: [{{name: sekoia, token: {TOKEN}}}]\n"
        f'queue: {{path: "{tmp_path / "q.db"}"}}\n'
        "sinks: {console: {type: log}}\n"
        "routes: [{name: all, sinks: [console]}]\n",
        encoding="utf-8",
    )
    body = EVENT.read_bytes()
    headers = {"Content-Type": "application/json"}
    served = serve(config)
    upstream = await served.__aenter__()
    port = int(upstream.url.rsplit(":", 1)[1])
    stopped = False
    try:
        with running_caddy(tmp_path, port) as (listen, trust):
            async with httpx.AsyncClient(verify=trust, timeout=10) as client:
                url = f"https://127.0.0.1:{listen}/hooks/{TOKEN}"
                accepted = await client.post(url, content=body, headers=headers)
                health = await client.get(f"https://127.0.0.1:{listen}/readyz")
                await served.__aexit__(None, None, None)
                stopped = True
                down = await client.post(url, content=body, headers=headers)
            await wait_for_log(
                tmp_path / "notirouter.access.log",
                lambda text: len(text.splitlines()) >= 3,
                "line for each of the three requests",
            )
            await wait_for_log(
                tmp_path / "caddy.log", lambda text: '"uri": "/hooks/***"' in text, "502 line"
            )
    finally:
        if not stopped:
            await served.__aexit__(None, None, None)
    assert accepted.status_code == 202, accepted.text
    assert health.status_code == 404  # health and metrics stay on the loopback
    assert down.status_code == 502  # notirouter stopped: caddy cannot reach it
    access = [
        json.loads(line)
        for line in (tmp_path / "notirouter.access.log").read_text(encoding="utf-8").splitlines()
    ]
    assert [(a["request"]["uri"], a["status"]) for a in access] == [
        ("/hooks/***", 202),
        ("/readyz", 404),
        ("/hooks/***", 502),
    ]
    errors = (tmp_path / "caddy.log").read_text(encoding="utf-8")
    assert '"uri": "/hooks/***"' in errors  # the 502's error line, with its request
    for log in (tmp_path / "notirouter.access.log", tmp_path / "caddy.log"):
        assert TOKEN not in log.read_text(encoding="utf-8"), f"the token is in {log.name}"
