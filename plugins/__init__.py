"""notirouter's built-in plugins, installed as ``notirouter.plugins``.

They use only the public ``notirouter`` API, exactly as a third-party plugin would.
"""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "notirouter.plugins.sekoia",
    "notirouter.plugins.sekoia_enricher",
    "notirouter.plugins.sekoia_messages",
    "notirouter.plugins.log",
    "notirouter.plugins.webhook",
    "notirouter.plugins.email",
    "notirouter.plugins.teams",
    "notirouter.plugins.mattermost",
    "notirouter.plugins.slack",
    "notirouter.plugins.discord",
)
"""Modules registered by :func:`notirouter.plugin_manager.make_plugin_manager`, in order.

Each is registered under its last name component (``sekoia``, ``log``, ``webhook``), the name
``plugins: {block: [...]}`` refers to.
"""
