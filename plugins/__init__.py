"""notirouter's built-in plugins, installed as ``notirouter.plugins``.

They use only the public ``notirouter`` API, exactly as a third-party plugin would. A family of
plugins lives in its own package (``sekoia/``, ``email/``, ``chat/``); each module registered
here has an explicit, stable name.
"""

DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("sekoia", "notirouter.plugins.sekoia.source"),
    ("sekoia_enricher", "notirouter.plugins.sekoia.enricher"),
    ("sekoia_messages", "notirouter.plugins.sekoia.messages"),
    ("notirouter_messages", "notirouter.plugins.operations"),
    ("log", "notirouter.plugins.log"),
    ("webhook", "notirouter.plugins.webhook"),
    ("email", "notirouter.plugins.email.sink"),
    ("teams", "notirouter.plugins.chat.teams"),
    ("mattermost", "notirouter.plugins.chat.mattermost"),
    ("slack", "notirouter.plugins.chat.slack"),
    ("discord", "notirouter.plugins.chat.discord"),
)
"""(name, module) of each plugin :func:`notirouter.api.manager.make_plugin_manager` registers,
in order. The name is what ``plugins: {block: [...]}`` and ``notirouter plugins`` show: it
stays the same wherever the module lives.
"""
