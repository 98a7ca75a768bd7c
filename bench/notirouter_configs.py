"""The notirouter configurations ``bench/compare.py`` runs, one per kind of work.

- ``webhook``: alert/created -> one webhook sink, no enrichment (Alertmanager's work);
- ``enriched``: alert/created -> the Sekoia enricher (fake Alert API) -> Teams and Mattermost,
  their default rate limits lifted (``rate_limit: 0``);
- ``backlog``: alert/created -> a webhook sink that is down (a closed port) and one that is up.

Every config has ``routes`` routes: ``routes - 1`` tenant routes first, each matching the same
type and action but a ``when`` on another community (so each is evaluated for every event and
none matches, the worst case of a route table), then the one that matches.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

TOKEN = "bench-token-0123456789abcdef"
KINDS = ("webhook", "enriched", "backlog")


def _sinks(kind: str, peers_url: str, down_url: str) -> dict[str, dict[str, Any]]:
    if kind == "webhook":
        return {"webhook": {"type": "webhook", "url": f"{peers_url}/to/webhook"}}
    if kind == "enriched":
        return {
            "teams": {"type": "teams", "url": f"{peers_url}/to/teams", "rate_limit": 0},
            "mattermost": {
                "type": "mattermost",
                "url": f"{peers_url}/to/mattermost",
                "rate_limit": 0,
            },
        }
    return {
        "down": {"type": "webhook", "url": down_url},
        "up": {"type": "webhook", "url": f"{peers_url}/to/up"},
    }


def write(
    directory: Path,
    *,
    kind: str,
    peers_url: str,
    api_key: str,
    queue: dict[str, Any],
    routes: int = 10,
    down_url: str = "",
) -> Path:
    """Write ``notirouter.yaml`` into ``directory``; its path."""
    sinks = _sinks(kind, peers_url, down_url)
    names = list(sinks)
    table: list[dict[str, Any]] = [
        {
            "name": f"tenant-{i}",
            "match": {"type": "alert", "action": "created"},
            "when": f'metadata.community_uuid == "{uuid.UUID(int=i + 1)}"',
            "sinks": names[:1],
        }
        for i in range(routes - 1)
    ]
    alerts: dict[str, Any] = {
        "name": "alerts",
        "match": {"type": "alert", "action": "created"},
        "sinks": names,
    }
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "hooks": [{"name": "bench", "token": TOKEN, "source": "sekoia"}],
        "queue": queue,
        "sinks": sinks,
        "routes": [*table, alerts],
    }
    if kind == "enriched":
        config["enrichers"] = {
            "sekoia": {
                "type": "sekoia",
                "api_key": api_key,
                "base_url": peers_url,
                # UI links only (never requested); a loopback base_url has no region to follow.
                "app_url": "https://app.sekoia.io",
            }
        }
        alerts["enrich"] = ["sekoia"]
    path = directory / "notirouter.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
