"""Which stored events are about a Sekoia.io alert (``trace`` given an alert uuid or short id).

An alert is named by ``attributes.uuid``/``short_id`` in ``alert`` events, by
``attributes.alert_uuid``/``alert_short_id`` in ``alert-comment`` events, and in
``attributes.updated.added_alerts_uuid``/``deleted_alerts_uuid`` of a case's
``alerts-updated``. The queue finds bodies that contain the text; this keeps those that name
the alert in one of these places (the text could appear anywhere else in an event).
"""

from __future__ import annotations

import json
import re
from typing import Any

# A Sekoia.io uuid, or a short id (letters and digits): nothing else is worth a scan.
ALERT_REFERENCE = re.compile(r"^(?:[0-9a-fA-F-]{36}|[A-Za-z0-9]{6,40})$")
_OWN = ("uuid", "short_id")
_OF_ALERT = ("alert_uuid", "alert_short_id")
_CASE_LISTS = ("added_alerts_uuid", "deleted_alerts_uuid")


def names_alert(body: bytes, reference: str) -> bool:
    """Whether the event ``body`` is about the alert ``reference``."""
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    if not isinstance(payload, dict):
        return False
    attributes = payload.get("attributes")
    if not isinstance(attributes, dict):
        return False
    keys = _OF_ALERT + (_OWN if payload.get("type") == "alert" else ())
    if any(attributes.get(key) == reference for key in keys):
        return True
    updated: Any = attributes.get("updated")
    if isinstance(updated, dict):
        for key in _CASE_LISTS:
            listed = updated.get(key)
            if isinstance(listed, list) and reference in listed:
                return True
    return False
