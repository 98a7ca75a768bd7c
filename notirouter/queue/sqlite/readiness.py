"""The transactions ``/readyz`` runs to tell whether the SQLite queue can store events.

Normally a transaction that reads nothing is enough: it shows the writer thread runs and can
take the write lock. After a failure it is not (a read-only or damaged file still runs
``SELECT 1``): then the probe stores and removes a row of the events table in one transaction,
the way an event is stored, so it fails exactly when events cannot be stored and succeeds once
they can again. Nothing of it is ever visible to a reader: the row is gone before the commit.
"""

from __future__ import annotations

import sqlite3

PROBE_ID = "readiness-probe"


def read_probe(connection: sqlite3.Connection) -> None:
    """The cheap probe, while the queue is healthy."""
    connection.execute("SELECT 1").fetchone()


def write_probe(connection: sqlite3.Connection) -> None:
    """The probe after a failure: what storing an event writes, undone before the commit."""
    # A pending row, as an event is stored, so that every index an event touches is written.
    # No claim can see it: claims run on this same connection, after this transaction.
    connection.execute(
        "INSERT INTO events (id, dedupe_key, hook, source, received_at, body, next_attempt_at)"
        " VALUES (?, ?, '', '', 0, x'', 0)",
        (PROBE_ID, PROBE_ID),
    )
    connection.execute("DELETE FROM events WHERE id = ?", (PROBE_ID,))
