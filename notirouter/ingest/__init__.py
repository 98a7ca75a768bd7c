"""Receiving: the HTTP server, its limits, the webhook endpoint and the rules at the door."""
