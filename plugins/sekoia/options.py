"""Options of the ``sekoia`` enricher, checked when the config loads.

The API address must be a known Sekoia.io region's (or a loopback address, for tests and local
tunnels): the API key is sent there, so a typo must fail at load rather than leak the key.
The app (UI) address for links follows the region unless ``app_url`` says otherwise.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from notirouter import EnricherOptions

from .places import REGIONS, check_app_url, check_case_link, resolve_api

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ValueError("expected seconds, or a duration such as 500ms, 30s, 5m, 1h")
        return float(match.group(1)) * _UNITS[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds)]
RegionName = Literal["fra1", "fra2", "mco1", "uae1", "usa1", "sgp1"]


class ReconcileOptions(BaseModel):
    """``reconcile:`` of a ``sekoia`` enricher: poll the alert list for missed webhooks.

    ``communities`` (default: the enricher's own, else every community the key sees, as one
    list) each get their own watermark. ``delay`` leaves the last moments to the webhooks,
    which usually arrive within seconds: a change is looked for once it is that old.
    """

    model_config = ConfigDict(extra="forbid")

    interval: Seconds = Field(default=60.0, ge=0.1, le=86_400)
    lookback: Seconds = Field(default=86_400.0, ge=60, le=30 * 86_400)
    communities: list[str] | None = Field(default=None, min_length=1)
    delay: Seconds = Field(default=60.0, ge=0, le=3600)
    page_size: int = Field(default=100, ge=1, le=1000)


class SekoiaOptions(EnricherOptions):
    """Options of the ``sekoia`` enricher (durations in seconds, or ``500ms``/``30s``/``5m``)."""

    api_key: SecretStr = Field(min_length=1, max_length=1000)
    region: RegionName | None = None
    base_url: str | None = None
    app_url: str | None = None
    case_link: str = "{app_url}/operations/cases/{short_id}"
    communities: list[str] | None = None
    timeout: Seconds = Field(default=10.0, gt=0, le=300)
    attempts: int = Field(default=4, ge=1, le=10)
    backoff_initial: Seconds = Field(default=0.5, ge=0, le=60)
    backoff_max: Seconds = Field(default=10.0, ge=0, le=600)
    retry_wait_max: Seconds = Field(default=30.0, ge=0, le=600)
    deadline: Seconds = Field(default=60.0, gt=0, le=600)
    cache_ttl: Seconds = Field(default=60.0, ge=0, le=86_400)
    cache_size: int = Field(default=1000, ge=1, le=100_000)
    # A copy (cached or being fetched) serves an event seen at most this long after its fetch
    # started: a storm shares one request; 0 makes every non-"created" event fetch anew.
    cache_window: Seconds = Field(default=0.5, ge=0, le=60)
    auth_log_interval: Seconds = Field(default=300.0, ge=0)
    auth_pause: Seconds = Field(default=30.0, ge=0, le=3600)
    fetch_comments: bool = True
    # Circuit breaker: after this many requests in a row fail for lack of the API (timeouts,
    # connection errors, 408, 5xx), fail fast for circuit_cooldown, doubling per failed probe
    # up to circuit_cooldown_max. 0 disables it.
    circuit_failures: int = Field(default=5, ge=0, le=1000)
    circuit_cooldown: Seconds = Field(default=5.0, gt=0, le=3600)
    circuit_cooldown_max: Seconds = Field(default=300.0, gt=0, le=86_400)
    reconcile: ReconcileOptions | None = None

    _api_base: str = PrivateAttr(default="")
    _app_url: str = PrivateAttr(default="")

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        # It goes into an HTTP header: say so at load rather than fail on every request.
        if not key or not all("!" <= c <= "~" for c in key):
            raise ValueError("api_key must be printable ASCII without spaces")
        return SecretStr(key)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        return None if value is None else resolve_api(value).base

    @field_validator("app_url")
    @classmethod
    def _check_app_url(cls, value: str | None) -> str | None:
        return None if value is None else check_app_url(value)

    @field_validator("case_link")
    @classmethod
    def _check_case_link(cls, value: str) -> str:
        return check_case_link(value)

    @model_validator(mode="after")
    def _check_circuit(self) -> SekoiaOptions:
        if self.circuit_cooldown_max < self.circuit_cooldown:
            raise ValueError("circuit_cooldown_max must not be shorter than circuit_cooldown")
        return self

    @model_validator(mode="after")
    def _check_reconcile(self) -> SekoiaOptions:
        wanted = self.reconcile.communities if self.reconcile is not None else None
        if wanted and self.communities is not None:
            outside = sorted(set(wanted) - set(self.communities))
            if outside:
                # Their changes would be enqueued, and then not enriched by this enricher.
                raise ValueError(
                    "reconcile.communities must be among communities; not there: "
                    + ", ".join(outside)
                )
        return self

    @model_validator(mode="after")
    def _resolve(self) -> SekoiaOptions:
        region = REGIONS[self.region] if self.region is not None else None
        if self.base_url is None:
            region = region or REGIONS["fra1"]
            self._api_base = region.api
        else:
            address = resolve_api(self.base_url)
            if region and address.region and region != address.region:
                raise ValueError(
                    f"base_url is in region {address.region.name} but region is {region.name}"
                )
            region = region or address.region
            self._api_base = address.base
        if self.app_url is not None:
            self._app_url = self.app_url
        elif region is not None:
            self._app_url = region.app
        else:
            raise ValueError("give region or app_url: UI links cannot be derived from base_url")
        return self

    @property
    def api_base(self) -> str:
        """The API base URL in effect (no trailing slash)."""
        return self._api_base

    @property
    def app_base(self) -> str:
        """The app (UI) URL links are built from (no trailing slash)."""
        return self._app_url
