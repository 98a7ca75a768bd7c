"""notirouter: a self-hosted, plugin-based notification router for security alerts.

This module is the public API for plugin authors: everything a source, enricher, sink or
formatter plugin needs is importable from here, and nothing else is promised.
"""

from notirouter.api.conversation import ConversationMode
from notirouter.api.enricher import (
    Enricher,
    EnricherContext,
    EnricherHealth,
    EnricherOptions,
    EnrichmentError,
)
from notirouter.api.escape import (
    TRUNCATION_MARKER,
    defuse_urls,
    escape_html,
    escape_markdown,
    escape_plain,
    escape_slack,
    escape_teams,
    neutralise_at_mentions,
    neutralise_mentions,
    reveal_invisible,
    truncate,
    truncate_utf8,
)
from notirouter.api.escape_chat import (
    MATTERMOST_ADDRESS,
    escape_discord,
    escape_mattermost,
    escape_mattermost_plain,
    escape_teams_plain,
)
from notirouter.api.events import Event
from notirouter.api.http import (
    HttpClient,
    HttpRequest,
    HttpResponse,
    SecretUrl,
    TransportError,
    json_bytes,
    parse_retry_after,
)
from notirouter.api.http_sink import HttpSink, classify_status
from notirouter.api.interaction import (
    ActionReport,
    ActionsOptions,
    AlertWriter,
    ChatAction,
    Click,
    InteractiveSink,
)
from notirouter.api.message import (
    CHANGED_FACT,
    Digest,
    DigestItem,
    Fact,
    Message,
    Severity,
    describe_change,
)
from notirouter.api.operations import OPERATIONAL_EVENT_TYPE, OperationalAction
from notirouter.api.reconcile import ChangeFeed, ReconciledChange
from notirouter.api.sink import (
    Outcome,
    SendResult,
    Sink,
    SinkContext,
    SinkOptions,
    StormOptions,
)
from notirouter.api.source import Source
from notirouter.api.spec import hookimpl
from notirouter.api.templating import TemplateText, make_environment

__version__ = "0.1.0"

__all__ = [
    "CHANGED_FACT",
    "MATTERMOST_ADDRESS",
    "OPERATIONAL_EVENT_TYPE",
    "TRUNCATION_MARKER",
    "ActionReport",
    "ActionsOptions",
    "AlertWriter",
    "ChangeFeed",
    "ChatAction",
    "Click",
    "ConversationMode",
    "Digest",
    "DigestItem",
    "Enricher",
    "EnricherContext",
    "EnricherHealth",
    "EnricherOptions",
    "EnrichmentError",
    "Event",
    "Fact",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "HttpSink",
    "InteractiveSink",
    "Message",
    "OperationalAction",
    "Outcome",
    "ReconciledChange",
    "SecretUrl",
    "SendResult",
    "Severity",
    "Sink",
    "SinkContext",
    "SinkOptions",
    "Source",
    "StormOptions",
    "TemplateText",
    "TransportError",
    "__version__",
    "classify_status",
    "defuse_urls",
    "describe_change",
    "escape_discord",
    "escape_html",
    "escape_markdown",
    "escape_mattermost",
    "escape_mattermost_plain",
    "escape_plain",
    "escape_slack",
    "escape_teams",
    "escape_teams_plain",
    "hookimpl",
    "json_bytes",
    "make_environment",
    "neutralise_at_mentions",
    "neutralise_mentions",
    "parse_retry_after",
    "reveal_invisible",
    "truncate",
    "truncate_utf8",
]
