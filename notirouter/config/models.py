"""The configuration schema (DESIGN.md §3.3), validated by pydantic.

Sink and enricher mappings are kept as raw dicts here: their shape belongs to the plugin type
named by ``type``, and the loader validates them with that type's ``Options`` model.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from notirouter.api.sink import StormOptions
from notirouter.config.log_settings import LoggingConfig
from notirouter.config.operations_settings import HeartbeatConfig, OperationsConfig

MIN_TOKEN_LENGTH = 16
_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~+-]+")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> Any:
    """Accept seconds as a number or a string like ``500ms``, ``30s``, ``10m``, ``24h``, ``7d``."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("expected a duration such as 30s, 10m, 24h or a number of seconds")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Timeout = Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=86_400)]


def _check_token(token: SecretStr) -> SecretStr:
    # pydantic's own length message would print the secret's length; say only the rule.
    value = token.get_secret_value()
    if len(value) < MIN_TOKEN_LENGTH:
        raise ValueError(f"a hook token needs at least {MIN_TOKEN_LENGTH} characters")
    if not _TOKEN_CHARACTERS.fullmatch(value):
        # "/" ends the path segment, "%" and "#" are decoded or cut by clients: such a token
        # would pass here and then answer 404 to every POST.
        raise ValueError("a hook token may only use letters, digits and . _ ~ + -")
    return token


HookToken = Annotated[SecretStr, AfterValidator(_check_token)]


def _parse_cidr(value: Any) -> Any:
    # ipaddress says what is wrong ("10.0.0.1/24 has host bits set"); pydantic's own network
    # type would only say "not a valid network".
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as exc:
            raise ValueError(
                f"expected a CIDR such as 192.0.2.0/24 or 2001:db8::/32: {exc}"
            ) from None
    raise ValueError("expected a CIDR such as 192.0.2.0/24 or 2001:db8::/32")


Cidr = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_parse_cidr)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def _check_uuid(value: str) -> str:
    if not UUID.fullmatch(value.strip()):
        raise ValueError("expected a community uuid such as d6cea089-0f36-46c4-a10a-0e4c2e20fb10")
    return value.strip().lower()


CommunityUuid = Annotated[str, AfterValidator(_check_uuid)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ServerConfig(_Strict):
    """``server:`` where the receiver listens and what it accepts."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    access_log: bool = True
    # Hostile or broken clients (README "HTTP"): what one connection may cost.
    max_header_bytes: int = Field(default=8192, ge=256, le=1_048_576)
    max_headers_bytes: int = Field(default=32_768, ge=1024, le=16 * 1_048_576)
    header_timeout: Timeout = 10.0
    idle_timeout: Timeout = 5.0
    body_timeout: Timeout = 30.0
    max_connections: int = Field(default=2048, ge=1, le=1_000_000)
    shutdown_grace: Duration = 10.0
    # How often each process writes what it holds in memory for `notirouter status`
    # (notirouter/operations/process_state.py); it counts as live for three intervals.
    status_interval: Timeout = 10.0
    trusted_proxies: list[Cidr] = Field(default_factory=list)
    """Peers whose ``X-Forwarded-For`` is believed (for ``hooks[].allow``)."""
    interactions_allow: list[Cidr] | None = Field(default=None, min_length=1)
    """Client addresses admitted to ``/interactions/*`` (None: any; others get 401). Mattermost
    does not sign its calls: its server's address is worth listing here."""
    # Where `notirouter reload` finds the running processes (None: `<queue.path>.pid` on
    # SQLite, no pid file on PostgreSQL); see notirouter/pidfile.py.
    pid_file: str | None = None


class HookConfig(_Strict):
    """One receiving endpoint, ``POST /hooks/<token>``."""

    name: Name
    token: HookToken
    source: str = "sekoia"
    allow: list[Cidr] | None = Field(default=None, min_length=1)
    """Client addresses admitted (None: any); others get the unknown token's 404."""


def _check_postgres_url(url: SecretStr | None) -> SecretStr | None:
    # Only the scheme is named: the URL may hold a password.
    if url is not None and not url.get_secret_value().startswith(("postgresql://", "postgres://")):
        raise ValueError("expected a postgresql://user@host:port/database URL")
    return url


class QueueConfig(_Strict):
    """``queue:`` where accepted events and delivery jobs are stored.

    ``sqlite`` (the default) is one file for one process; ``postgres`` is one database for
    several receivers and workers (``url``, ``pool_size`` and ``connect_timeout`` apply to it).
    """

    backend: Literal["sqlite", "postgres"] = "sqlite"
    path: str = "./var/notirouter.db"
    dedupe_window: Duration = 86_400.0
    # How long finished events stay for ``dead``/history before the hourly prune; a key must
    # outlive its dedupe window, so a shorter retention is refused (checked in the loader).
    retention: Duration = 7 * 86_400.0
    # How long a conversation's first-message reference is kept after its last use.
    conversation_retention: Duration = 30 * 86_400.0
    synchronous: Literal["full", "normal"] = "full"
    busy_timeout: Duration = 5.0
    url: Annotated[SecretStr | None, AfterValidator(_check_postgres_url)] = None
    pool_size: int = Field(default=10, ge=2, le=200)
    connect_timeout: Duration = 5.0

    @field_validator("retention")
    @classmethod
    def _retention_covers_dedupe_window(cls, retention: float, info: ValidationInfo) -> float:
        window = info.data.get("dedupe_window")  # absent when it was invalid itself
        if window is not None and retention < window:
            raise ValueError(
                f"retention ({retention:g}s) must not be shorter than dedupe_window "
                f"({window:g}s): a pruned event's key could no longer stop a duplicate"
            )
        return retention

    @model_validator(mode="after")
    def _postgres_needs_url_and_driver(self) -> QueueConfig:
        if self.backend != "postgres":
            return self
        if self.url is None:
            raise ValueError("backend postgres needs url: postgresql://user@host:port/database")
        if importlib.util.find_spec("asyncpg") is None:
            raise ValueError(
                "backend postgres needs the PostgreSQL driver: pip install 'notirouter[postgres]'"
            )
        return self


class DeliveryConfig(_Strict):
    """``delivery:`` retries, leases and worker counts."""

    max_age: Duration = 86_400.0
    backoff_initial: Duration = 1.0
    backoff_max: Duration = 600.0
    lease: Duration = Field(default=120.0, gt=0)
    route_workers: int = Field(default=64, ge=1, le=1024)


class MatchConfig(_Strict):
    """``match:`` of a route: event type, action and community, each a string, a list or ``"*"``.

    ``community`` names a Sekoia.io community (tenant) by its name in ``communities:`` or by
    its uuid; like type and action it is decided before enrichment.
    """

    type: str | list[str] = "*"
    action: str | list[str] = "*"
    community: str | list[str] = "*"


class GroupConfig(_Strict):
    """``group:`` of a route: gather its messages per group and send digests (Storm control).

    ``by`` are expressions on the event and its enrichment (as in ``when``); messages whose
    values are equal share a group (``[]``: one group for the route). A new group waits ``wait``
    before its first message, then sends at most one per ``interval`` with what arrived since,
    listing ``max_items`` items and counting the rest.
    """

    by: list[str] = Field(default_factory=list, max_length=16)
    wait: Duration = 30.0
    interval: Duration = 300.0
    max_items: int = Field(default=50, ge=1, le=1000)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("the key must not be empty: it names what is counted or compared")
    return value


class NotifyOnConfig(_Strict):
    """``notify_on:`` of a route: notify an update only when a listed value changed.

    ``key`` is a template naming the thing (``{{ alert.uuid }}``); ``changes`` are expressions
    (as in ``when``) whose values are compared with those of the last notification for that
    key, kept in the queue for ``retention`` after the key was last seen.
    """

    key: Annotated[str, AfterValidator(_not_blank)]
    changes: list[str] = Field(min_length=1, max_length=16)
    retention: Annotated[float, BeforeValidator(parse_duration), Field(gt=0)] = 30 * 86_400.0


class ThrottleConfig(_Strict):
    """``throttle:`` of a route: at most ``max`` messages per ``key`` per ``per``; the rest of
    a window is folded into one digest sent when the window ends."""

    key: Annotated[str, AfterValidator(_not_blank)]
    max: int = Field(ge=1, le=1_000_000)
    per: Annotated[float, BeforeValidator(parse_duration), Field(gt=0, le=30 * 86_400)]


class TimeRangeConfig(_Strict):
    """One range of a time window: weekdays, local times of day, and the zone of that clock.

    ``weekdays`` are names or inclusive ranges (``monday:friday``), ``times`` ``HH:MM-HH:MM``
    ranges (end excluded, ``24:00`` allowed); left out, every day or the whole day. Checked in
    :mod:`notirouter.config.time_windows`.
    """

    weekdays: list[str] | None = None
    times: list[str] | None = None
    timezone: str = "UTC"


class RouteConfig(_Strict):
    """One route: which events, optional condition, which sinks, optional overrides."""

    name: Name
    match: MatchConfig = Field(default_factory=MatchConfig)
    enrich: list[str] = Field(default_factory=list)
    when: str | None = None
    sinks: list[str] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    title: str | None = None
    text: str | None = None
    facts: dict[str, str] | None = None
    group: GroupConfig | None = None
    notify_on: NotifyOnConfig | None = None
    throttle: ThrottleConfig | None = None
    # Time windows (README "Time windows and quiet hours"): hold what matches while inactive.
    active: str | None = None
    active_outside: str | None = None
    bypass: str | None = None


class PluginsConfig(_Strict):
    """``plugins:`` switches for installed plugins."""

    block: list[str] = Field(default_factory=list)


class AppConfig(_Strict):
    """The whole configuration file."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    hooks: list[HookConfig] = Field(default_factory=list)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    enrichers: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    # Tenants (README "Tenants"): a name per Sekoia.io community uuid, for match and templates.
    communities: dict[Name, CommunityUuid] = Field(default_factory=dict)
    sinks: dict[Name, dict[str, Any]] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)
    time_windows: dict[Name, list[TimeRangeConfig]] = Field(default_factory=dict)
    plugins: PluginsConfig = Field(default_factory=PluginsConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    operations: OperationsConfig = Field(default_factory=OperationsConfig)
    heartbeat: HeartbeatConfig | None = None
    # Storm mode for every rate-limited sink (README "Storm mode"): on by default; a sink's
    # own ``storm:`` wins; ``false`` turns it off.
    storm: StormOptions = Field(default_factory=StormOptions)
