"""Sekoia.io: the webhook source, the API enricher and the default messages."""
