"""The PostgreSQL queue's longer statements, each one round trip (``$n`` are parameters).

Wake-ups are sent inside the statement that adds the work (``pg_notify`` is delivered at
commit), so a process is never woken for work that was rolled back.
"""

_INSERT_EVENT = (
    "WITH inserted AS (INSERT INTO events (id, dedupe_key, hook, source, received_at, body,"
    " next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $5) {conflict} RETURNING id)"
    " SELECT id, pg_notify('notirouter', 'events') FROM inserted"
)
# A new key: stored and notified; a known key: nothing, and no id comes back.
INSERT_NEW_EVENT = _INSERT_EVENT.format(conflict="ON CONFLICT DO NOTHING")
# After the old event's key was retired (outside the dedupe window).
INSERT_EVENT = _INSERT_EVENT.format(conflict="")

# Due events under a new lease; rows another worker is claiming are skipped, not waited for.
CLAIM_EVENTS = (
    "UPDATE events SET attempts = attempts + 1, lease = $1, next_attempt_at = $2"
    " WHERE id IN (SELECT id FROM events WHERE state = 'pending' AND next_attempt_at <= $3"
    " ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, hook, source, body, received_at, attempts"
)

# Routing is atomic: mark the event routed (if the lease is still ours), write its jobs (a
# second routing after a lost lease adds none: UNIQUE (event, route, sink)) and wake the sinks,
# all or nothing. Returns 1 if routed, 0 if the lease was lost.
COMPLETE_EVENT = (
    "WITH routed AS (UPDATE events SET state = 'routed', last_error = NULL, routing = $8"
    "   WHERE id = $1 AND lease = $2 AND state = 'pending' RETURNING id),"
    " jobs AS (INSERT INTO deliveries (event_id, route, sink, message, created_at,"
    "   next_attempt_at) SELECT routed.id, j.route, j.sink, j.message, $6, $6"
    "   FROM routed, unnest($3::text[], $4::text[], $5::text[]) AS j(route, sink, message)"
    "   ON CONFLICT DO NOTHING RETURNING 1),"
    " notified AS (SELECT pg_notify('notirouter', k) FROM unnest($7::text[]) AS k"
    "   WHERE EXISTS (SELECT 1 FROM routed))"
    # A SELECT in WITH runs only if referenced: count it (times 0) so the notices go out.
    " SELECT (SELECT COUNT(*) FROM routed) + 0 * (SELECT COUNT(*) FROM jobs)"
    "   + 0 * (SELECT COUNT(*) FROM notified)"
)

# Before gates are decided: the event is still ours (and stays so until commit).
LOCK_OWN_EVENT = (
    "SELECT 1 FROM events WHERE id = $1 AND lease = $2 AND state = 'pending' FOR UPDATE"
)

# A sink's due jobs under a new lease, unless a Retry-After pause (from any process) holds it.
CLAIM_DELIVERIES = (
    "UPDATE deliveries SET attempts = attempts + 1, lease = $1, next_attempt_at = $2"
    " WHERE id IN (SELECT id FROM deliveries WHERE sink = $3 AND state = 'pending'"
    " AND next_attempt_at <= $4 AND NOT EXISTS (SELECT 1 FROM sink_gates g"
    " WHERE g.sink = $3 AND g.paused_until > $4)"
    " ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, event_id, route, sink, message, attempts, created_at"
)

# When the sink next has work: its earliest pending job, or the end of its pause if later.
NEXT_DELIVERY_DUE = (
    "SELECT GREATEST(MIN(d.next_attempt_at), MAX(g.paused_until))"
    " FROM deliveries d LEFT JOIN sink_gates g ON g.sink = d.sink"
    " WHERE d.sink = $1 AND d.state = 'pending'"
)

# Attempts' outcomes and their rows in the deliveries' histories, any number in one round trip
# (``$n`` are arrays, one element per attempt); no history row where the lease was lost (the
# new owner records its own). Returns the ids of the deliveries recorded.
FINISH_DELIVERIES = (
    "WITH input AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],"
    "   $5::float8[], $6::float8[], $7::text[], $8::int[], $9::text[], $10::int[], $11::text[],"
    "   $12::float8[], $13::float8[]) AS i(id, lease, state, error, next_at, finished_at, sink,"
    "   attempt, outcome, status, detail, paused_until, at)),"
    " finished AS (UPDATE deliveries d SET state = i.state, last_error = i.error,"
    "   next_attempt_at = i.next_at, finished_at = i.finished_at, lease = -d.lease FROM input i"
    # By primary key, never by a partial index on pending rows (which the planner, with a
    # young table's statistics, prefers, and which then scans every pending row): ``IS TRUE``
    # keeps the state test out of index matching.
    "   WHERE d.id = ANY($1::bigint[]) AND d.id = i.id AND d.lease = i.lease"
    "   AND (d.state = 'pending') IS TRUE RETURNING d.id),"
    " noted AS (INSERT INTO delivery_attempts (delivery_id, sink, attempt, at, outcome, status,"
    "   detail, next_attempt_at, paused_until)"
    "   SELECT i.id, i.sink, i.attempt, i.at, i.outcome, i.status, i.detail,"
    "   CASE WHEN i.state = 'pending' THEN i.next_at END, i.paused_until"
    "   FROM input i JOIN finished f ON f.id = i.id RETURNING 1)"
    " SELECT id FROM finished"
)

# A worker still routing an event, or attempting a delivery, keeps it: its lease is pushed from
# now. Recording an outcome ends a lease (an event's becomes 0, a delivery's is negated: still
# telling which claim took it, for tests and forensics, but matching no renewal), so a renewal
# that arrives after it changes nothing, not even a retry's next attempt time.
RENEW_EVENT = (
    "UPDATE events SET next_attempt_at = $3 WHERE id = $1 AND lease = $2 AND state = 'pending'"
)
RENEW_DELIVERY = (
    "UPDATE deliveries SET next_attempt_at = $3 WHERE id = $1 AND lease = $2 AND state = 'pending'"
)
