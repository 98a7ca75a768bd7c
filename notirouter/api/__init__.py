"""The plugin API: hook specs, the plugin manager, and the types a plugin builds on.

Plugins import these names from ``notirouter`` itself (its ``__all__``), never from here."""
