"""The PostgreSQL schema, its versions and forward migrations.

Everything lives in the ``notirouter`` schema (the pool sets ``search_path``), so the queue
can share a database with other applications. The model is SQLite's: ``events`` as received,
one ``deliveries`` row per (event, route, sink), both claimed by pushing ``next_attempt_at``
to the end of a lease; times are epoch seconds. ``sink_gates`` holds each sink's token bucket
and ``Retry-After`` pause, shared by every process.

Migrations run under a transaction-scoped advisory lock: several processes starting at once
migrate once, the others wait and find the schema current.
"""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from notirouter.queue.sqlite.writer import QueueUnavailable
from notirouter.queue.versions import too_new

SCHEMA_NAME = "notirouter"
# Any fixed number: the advisory lock key that serialises migrations.
MIGRATION_LOCK = 0x6E6F7469

# version -> the statements that bring the previous version to it
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        dedupe_key TEXT NOT NULL UNIQUE,
        hook TEXT NOT NULL,
        source TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        body BYTEA NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        lease BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE INDEX events_due ON events (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX events_received ON events (received_at);
    CREATE INDEX events_failed ON events (next_attempt_at) WHERE state = 'failed';
    CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        event_id TEXT NOT NULL,
        route TEXT NOT NULL,
        sink TEXT NOT NULL,
        message TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        lease BIGINT NOT NULL DEFAULT 0,
        last_error TEXT,
        finished_at DOUBLE PRECISION,
        UNIQUE (event_id, route, sink)
    );
    CREATE INDEX deliveries_due ON deliveries (sink, next_attempt_at) WHERE state = 'pending';
    CREATE INDEX deliveries_dead ON deliveries (state, finished_at);
    CREATE TABLE sink_gates (
        sink TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        paused_until DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    """,
    # What trace reads: the routing decisions per event, one row per delivery attempt (an
    # index on failures only, so a delivered attempt costs one row and one index entry).
    2: """
    ALTER TABLE events ADD COLUMN routing TEXT;
    CREATE TABLE delivery_attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        sink TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        detail TEXT,
        next_attempt_at DOUBLE PRECISION,
        paused_until DOUBLE PRECISION
    );
    CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id);
    CREATE INDEX delivery_attempts_failed ON delivery_attempts (sink, id)
        WHERE outcome <> 'delivered';
    """,
    # Storm control: groups and the messages they hold (notirouter.queue.postgres.groups).
    3: """
    CREATE TABLE storm_groups (
        kind TEXT NOT NULL,
        route TEXT NOT NULL,
        group_key TEXT NOT NULL,
        sinks TEXT[] NOT NULL,
        interval_seconds DOUBLE PRECISION NOT NULL,
        max_items INTEGER NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        flushes INTEGER NOT NULL DEFAULT 0,
        next_flush_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kind, route, group_key)
    );
    CREATE INDEX storm_groups_due ON storm_groups (next_flush_at);
    CREATE TABLE storm_group_items (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        route TEXT NOT NULL,
        group_key TEXT NOT NULL,
        event_id TEXT NOT NULL,
        message TEXT NOT NULL,
        severity INTEGER NOT NULL,
        link TEXT,
        added_at DOUBLE PRECISION NOT NULL,
        UNIQUE (kind, route, group_key, event_id)
    );
    CREATE INDEX storm_group_items_group ON storm_group_items (kind, route, group_key, id);
    """,
    # Conversations: the service's id of each conversation's first message, per (sink, thread
    # key), and an index for the in-order claim (the oldest unfinished job of a thread key).
    4: """
    CREATE TABLE message_refs (
        sink TEXT NOT NULL,
        thread_key TEXT NOT NULL,
        reference TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        used_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (sink, thread_key)
    );
    CREATE INDEX message_refs_used ON message_refs (used_at);
    CREATE INDEX deliveries_thread
        ON deliveries ((sink || ' ' || ((message::jsonb) ->> 'thread_key')), id)
        WHERE state = 'pending';
    """,
    # Storm control's gates: the values last notified per (route, notify_on key), kept until
    # expires_at (retention after the key was last seen), and each throttle key's window.
    5: """
    CREATE TABLE notify_state (
        route TEXT NOT NULL,
        notify_key TEXT NOT NULL,
        notified TEXT,
        seen_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (route, notify_key)
    );
    CREATE INDEX notify_state_expires ON notify_state (expires_at);
    CREATE TABLE throttle_windows (
        route TEXT NOT NULL,
        throttle_key TEXT NOT NULL,
        window_start DOUBLE PRECISION NOT NULL,
        window_end DOUBLE PRECISION NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (route, throttle_key)
    );
    CREATE INDEX throttle_windows_end ON throttle_windows (window_end);
    """,
    # Silences (notirouter.queue.postgres.silences): kept after they end, until retention.
    6: """
    CREATE TABLE silences (
        id TEXT PRIMARY KEY,
        matchers TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        ends_at DOUBLE PRECISION NOT NULL,
        expired_at DOUBLE PRECISION,
        comment TEXT NOT NULL,
        author TEXT NOT NULL
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    """,
    # Storm mode (notirouter.queue.postgres.storms): each sink's storm state and totals, and for
    # a delivery folded into a digest, the digest's delivery id.
    7: """
    ALTER TABLE deliveries ADD COLUMN folded_into BIGINT;
    CREATE INDEX deliveries_folded_into ON deliveries (folded_into) WHERE folded_into IS NOT NULL;
    CREATE TABLE sink_storms (
        sink TEXT PRIMARY KEY,
        active BOOLEAN NOT NULL DEFAULT FALSE,
        since DOUBLE PRECISION,
        ended_at DOUBLE PRECISION,
        storms INTEGER NOT NULL DEFAULT 0,
        folded BIGINT NOT NULL DEFAULT 0,
        digests BIGINT NOT NULL DEFAULT 0,
        folded_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL
    );
    """,
    # Chat actions: clicks queued for the interaction workers of every process, with what
    # came of them, and the marks that refuse a replayed request or arm a confirmation.
    8: """
    CREATE TABLE interactions (
        id BIGSERIAL PRIMARY KEY,
        sink TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        lease BIGINT NOT NULL DEFAULT 0,
        result TEXT,
        finished_at DOUBLE PRECISION
    );
    CREATE INDEX interactions_due ON interactions (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX interactions_finished ON interactions (finished_at);
    CREATE TABLE interaction_marks (
        mark TEXT PRIMARY KEY,
        until DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX interaction_marks_until ON interaction_marks (until);
    """,
    # Reconciliation with an API (README "Never miss an alert"): per stream (an enricher and
    # community) its watermark and the lease of the process polling it, and the changes
    # already notified (``origin``: by a webhook or by reconciliation), kept for at least the
    # lookback.
    9: """
    CREATE TABLE reconcile_streams (
        stream TEXT PRIMARY KEY,
        watermark DOUBLE PRECISION,
        holder TEXT,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0
    );
    CREATE TABLE seen_changes (
        change_key TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        origin TEXT NOT NULL,
        seen_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX seen_changes_seen ON seen_changes (seen_at);
    """,
    # What each serving process holds in memory (caches, circuits, sinks in flight), as it last
    # reported it, for ``notirouter status`` (notirouter.operations.process_state).
    11: """
    CREATE TABLE process_states (
        process_id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        reported_at DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL
    );
    """,
}
LATEST = max(MIGRATIONS)
Connection = asyncpg.Connection | PoolConnectionProxy


async def current_version(connection: Connection) -> int:
    """The version of the queue schema (0: none yet)."""
    exists = await connection.fetchval("SELECT to_regclass($1)", f"{SCHEMA_NAME}.schema_version")
    if exists is None:
        return 0
    version = await connection.fetchval("SELECT MAX(version) FROM notirouter.schema_version")
    return int(version or 0)


async def migrate(connection: Connection, where: str, *, create: bool) -> int:
    """Bring the schema to :data:`LATEST` (``create=False``: it must exist); return it."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        version = await current_version(connection)
        if version > LATEST:
            raise too_new(version, LATEST, where)
        if version == 0 and not create:
            raise QueueUnavailable(f"no notirouter queue in {where} (run notirouter migrate)")
        if version == LATEST:
            return version
        await connection.execute(
            f"CREATE SCHEMA IF NOT EXISTS {SCHEMA_NAME};"
            f" SET LOCAL search_path TO {SCHEMA_NAME};"
            " CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        # In order; a number may be missing (kept free for another change).
        for step in sorted(v for v in MIGRATIONS if v > version):
            await connection.execute(MIGRATIONS[step])
        await connection.execute("DELETE FROM schema_version")
        await connection.execute("INSERT INTO schema_version (version) VALUES ($1)", LATEST)
        return LATEST
