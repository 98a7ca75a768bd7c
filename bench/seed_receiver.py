"""The seed's sample receiver (``/work/shared/seed``: Sekoia.io's documented FastAPI example),
kept as written, a reference for ``bench/compare.py``: enrichment plus one Teams post per event.

Its two bugs are fixed, each marked ``BUG FIX``:

1. the second half of the message was a plain string, not an f-string, so every Teams message
   said literally ``“{alert['status']['name']}”`` instead of the alert's status and urgency;
2. ``client.post(...)`` was never awaited, so the coroutine was dropped and nothing ever reached
   Teams (Python only warns "coroutine was never awaited").

Three adaptations to run it here, none of which changes its work: the API base URL comes from
``SEKOIA_API_URL`` (the loopback fake instead of ``https://api.sekoia.io``); ``BaseSettings``
comes from ``pydantic.v1`` (pydantic 2 moved it out; the model is the same); the path takes the
token as a parameter so the bench's URL shape fits every system. It still opens a new HTTP
client per event, as written: that is its cost, not a bug.

Run: ``APIKEY=... TEAMS_WEBHOOK_URL=... SEKOIA_API_URL=... uvicorn seed_receiver:app``.
"""

# ruff: noqa: UP045 -- the seed's own typing style, kept to stay recognisable

from datetime import datetime
from typing import Literal, Optional

import httpx
from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel
from pydantic.v1 import BaseSettings


class WebHookSettings(BaseSettings):  # type: ignore[misc,valid-type]
    apikey: str
    teams_webhook_url: Optional[str] = None
    sekoia_api_url: str = "https://api.sekoia.io"


class SEKOIAIOWebHookAlertAttributes(BaseModel):
    uuid: str
    short_id: str


class SEKOIAIOWebHookMetadata(BaseModel):
    version: int = 2
    created_at: datetime
    community_uuid: str
    avatar_uuid: Optional[str] = None
    user_uuid: Optional[str] = None
    permissions: Optional[list[str]] = None


class SEKOIAIOWebHookEvent(BaseModel):
    type: Literal["alert"]
    action: str
    attributes: SEKOIAIOWebHookAlertAttributes
    metadata: SEKOIAIOWebHookMetadata


app = FastAPI()
settings = WebHookSettings()


async def push_notification_to_teams(event: SEKOIAIOWebHookEvent) -> None:
    """Simple task that will extract the retrieve the full alert via
    Sekoia.io API and then creates a message that will be posted on
    Microsoft Teams via a predefined incoming WebHook.

    """
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"{settings.sekoia_api_url}/v1/sic/alerts/{event.attributes.uuid}",
            params={"stix": False},
            headers={"Authorization": f"Bearer {settings.apikey}"},
        )
        if response.status_code == 200:
            alert = response.json()
            message = (
                f"A new alert “{alert['title']}” was created on Sekoia.io with "
                # BUG FIX 1: this line lacked its f prefix.
                f"status “{alert['status']['name']}” and “{alert['urgency']['display']}” severity."
            )
            if settings.teams_webhook_url:
                # BUG FIX 2: the post was never awaited, so it was never sent.
                await client.post(settings.teams_webhook_url, json={"text": message})


@app.post("/hooks/{token}")
async def handle_new_alert(
    token: str, event: SEKOIAIOWebHookEvent, background_tasks: BackgroundTasks
) -> None:
    background_tasks.add_task(push_notification_to_teams, event)
