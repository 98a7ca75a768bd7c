"""Delivery: one dispatcher per sink, with retries and rate limits."""
