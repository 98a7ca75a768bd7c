"""Where Sekoia.io lives: regions, API and UI addresses, and the ids allowed into a URL path.

Each region has an app (UI) host; its API is ``<app host>/api``, except FRA1 whose documented
API host is ``api.sekoia.io`` (``app.sekoia.io/api`` works too). Links to the UI are built from
the app host, so an analyst in FRA2 never gets a link to FRA1.

Ids from webhook events are untrusted: only a UUID or an alert short id of the shape Sekoia.io
gives them (``AL`` and 6 to 30 letters or digits, e.g. ``ALEY4fqz8moo``) ever goes into an API
path. A crafted ``"uuid": "../../v1/apikeys"`` cannot steer the authenticated request to another
endpoint, and neither can a plain word such as ``"short_id": "search"``, which would otherwise
address ``/v1/sic/alerts/search``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit


@dataclass(frozen=True, slots=True)
class Region:
    """One Sekoia.io region: its API base URL and its app (UI) URL."""

    name: str
    api: str
    app: str


REGIONS: dict[str, Region] = {
    "fra1": Region("fra1", "https://api.sekoia.io", "https://app.sekoia.io"),
    "fra2": Region("fra2", "https://app.fra2.sekoia.io/api", "https://app.fra2.sekoia.io"),
    "mco1": Region("mco1", "https://app.mco1.sekoia.io/api", "https://app.mco1.sekoia.io"),
    "uae1": Region("uae1", "https://app.uae1.sekoia.io/api", "https://app.uae1.sekoia.io"),
    "usa1": Region("usa1", "https://app.usa1.sekoia.io/api", "https://app.usa1.sekoia.io"),
    "sgp1": Region("sgp1", "https://app.sgp1.sekoia.io/api", "https://app.sgp1.sekoia.io"),
}
"""Known regions (Sekoia.io docs, "Regions" and the developer quickstart)."""


def _api_hosts() -> dict[str, tuple[Region, str]]:
    """Host -> (region, path prefix of the API on that host)."""
    hosts: dict[str, tuple[Region, str]] = {}
    for region in REGIONS.values():
        app_host = urlsplit(region.app).hostname or ""
        hosts[app_host] = (region, "/api")
        # The regions page also lists api.<region>.sekoia.io (e.g. api.usa1, api.sgp1).
        hosts["api." + app_host.removeprefix("app.")] = (region, "")
    return hosts


API_HOSTS = _api_hosts()


@dataclass(frozen=True, slots=True)
class ApiAddress:
    """A validated API base URL (no trailing slash) and the region it belongs to, if known."""

    base: str
    region: Region | None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (tests, or a local tunnel to the API)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api(url: str) -> ApiAddress:
    """Validate a configured ``base_url``; raise ``ValueError`` saying what is accepted.

    Accepted: a Sekoia.io API address of a known region over HTTPS (the app host with or
    without ``/api``, or an ``api.`` host), or any http(s) URL on a loopback address.
    """
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("base_url must not contain credentials, a query or a fragment")
    if parts.scheme in ("http", "https") and is_loopback(host):
        return ApiAddress(url.strip().rstrip("/"), None)
    known = API_HOSTS.get(host)
    if parts.scheme != "https" or known is None or parts.port not in (None, 443):
        examples = ", ".join(r.api for r in REGIONS.values())
        raise ValueError(
            "base_url must be the Sekoia.io API of a known region over https "
            f"({examples}), or a loopback address"
        )
    region, prefix = known
    path = parts.path.rstrip("/")
    if path not in ("", prefix):
        raise ValueError(f"base_url: unexpected path {path!r} (expected {prefix or 'none'})")
    return ApiAddress(f"https://{host}{prefix}", region)


def check_app_url(url: str) -> str:
    """Validate an ``app_url`` (UI links only, never sent a credential); no trailing slash."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))
    if not host or not secure or parts.query or parts.fragment or parts.username:
        raise ValueError("app_url must be an https:// URL such as https://app.sekoia.io")
    return url.strip().rstrip("/")


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SHORT_ID = re.compile(r"[A-Za-z0-9]{1,64}")
# Every alert short id in Sekoia.io's docs and samples is "AL" + 10 letters and digits
# (ALEY4fqz8moo, ALakbd8NXp9W, ALL1A4SKUiU2); the range leaves room for other lengths. The
# prefix is what matters: no word of the API's own paths under /v1/sic/alerts/ starts with it.
_ALERT_SHORT_ID = re.compile(r"AL[A-Za-z0-9]{6,30}")
_STIX_ID = re.compile(r"[a-z][a-z0-9-]{0,62}--" + _UUID.pattern)


def valid_uuid(value: Any) -> str | None:
    """``value`` if it is a canonical UUID string, else ``None``."""
    return value if isinstance(value, str) and _UUID.fullmatch(value) else None


def valid_short_id(value: Any) -> str | None:
    """``value`` if it looks like a short id (``[A-Za-z0-9]``, at most 64), else ``None``.

    Good enough for text and UI links, where nothing is sent with the API key; an API path
    takes only :func:`alert_short_id`.
    """
    return value if isinstance(value, str) and _SHORT_ID.fullmatch(value) else None


def alert_short_id(value: Any) -> str | None:
    """``value`` if it has the shape of an alert short id (``AL`` + 6 to 30 ``[A-Za-z0-9]``).

    The only short ids allowed into an API path: an id of any other shape could be one of the
    API's own path words (``/v1/sic/alerts/search``).
    """
    return value if isinstance(value, str) and _ALERT_SHORT_ID.fullmatch(value) else None


def valid_stix_id(value: Any) -> str | None:
    """``value`` if it is a STIX id such as ``report--<uuid>``, else ``None``."""
    return value if isinstance(value, str) and _STIX_ID.fullmatch(value) else None


def path_segment(value: str) -> str:
    """An already validated id, percent-encoded anyway (defence in depth)."""
    return quote(value, safe="")


CASE_LINK_FIELDS = frozenset({"app_url", "short_id", "uuid"})


def check_case_link(template: str) -> str:
    """Validate a case link template: only ``{app_url}``, ``{short_id}`` and ``{uuid}``."""
    fields = set(re.findall(r"{([^{}]*)}", template))
    unknown = fields - CASE_LINK_FIELDS
    if unknown:
        raise ValueError(
            f"case_link: unknown placeholder {sorted(unknown)[0]!r} "
            "(allowed: {app_url}, {short_id}, {uuid})"
        )
    return template


class Links:
    """UI links for one configured app URL; every id is validated before it goes in."""

    def __init__(self, app_url: str, case_link: str) -> None:
        self.app_url = app_url
        self._case_link = case_link

    def alert(self, short_id: Any) -> str | None:
        """``<app>/operations/alerts/<short_id>`` (the UI's documented alert address)."""
        checked = valid_short_id(short_id)
        return f"{self.app_url}/operations/alerts/{checked}" if checked else None

    def case(self, short_id: Any, uuid: Any) -> str | None:
        """The case page from the ``case_link`` template (the UI's case address is undocumented)."""
        checked_short, checked_uuid = valid_short_id(short_id), valid_uuid(uuid)
        needs = set(re.findall(r"{([^{}]*)}", self._case_link))
        if ("short_id" in needs and not checked_short) or ("uuid" in needs and not checked_uuid):
            return None
        return self._case_link.format(
            app_url=self.app_url, short_id=checked_short or "", uuid=checked_uuid or ""
        )

    def intelligence_object(self, stix_id: Any) -> str | None:
        """``<app>/intelligence/objects/<stix id>`` for a STIX id such as ``report--<uuid>``."""
        checked = valid_stix_id(stix_id)
        return f"{self.app_url}/intelligence/objects/{checked}" if checked else None
