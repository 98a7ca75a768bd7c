"""The queue's tables and indexes.

``events`` holds every accepted event as received (the raw body), keyed by a unique dedupe
key. ``deliveries`` holds one job per (event, route, sink) with the formatted message. Both are
claimed by setting ``next_attempt_at`` to the end of a lease, so the partial indexes on
``next_attempt_at`` of pending rows are all a worker ever scans.
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    hook TEXT NOT NULL,
    source TEXT NOT NULL,
    received_at REAL NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    route TEXT NOT NULL,
    sink TEXT NOT NULL,
    message TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    lease INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    finished_at REAL,
    UNIQUE (event_id, route, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (sink, next_attempt_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_dead ON deliveries (state, finished_at);
"""
