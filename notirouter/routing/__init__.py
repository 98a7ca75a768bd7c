"""Routing: the route table, the pipeline from event to messages, and the event router."""
