"""asyncpg against psycopg 3 on the queue's claim path, on the local PostgreSQL.

Each driver, through its own pool of 8 connections, claims pending rows with the query the
PostgreSQL backend uses (``FOR UPDATE SKIP LOCKED`` under a lease) and then completes each
claimed row guarded by its lease token, from 8 concurrent loops, until the table is drained.
Batch 1 is a sink dispatcher at low load (one job per claim); batch 32 is a busy one.
Runs alternate between the drivers, and each reports jobs/s and the client's CPU time per job:
on a shared machine the wall-clock rate moves with the neighbours' load, the CPU a driver
spends per job much less. (psycopg is not a notirouter dependency: ``pip install
'psycopg[binary,pool]'`` to run this.)

    .venv/bin/python bench/pg_drivers.py [postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import asyncpg
import psycopg
import psycopg_pool

ROWS = 10_000
REPEATS = 5
LOOPS = 8
SETUP = """
DROP TABLE IF EXISTS bench_jobs;
CREATE TABLE bench_jobs (id BIGSERIAL PRIMARY KEY, sink TEXT NOT NULL, state TEXT NOT NULL
  DEFAULT 'pending', next_attempt_at DOUBLE PRECISION NOT NULL, lease BIGINT NOT NULL DEFAULT 0,
  attempts INT NOT NULL DEFAULT 0, message TEXT NOT NULL);
CREATE INDEX bench_jobs_due ON bench_jobs (sink, next_attempt_at) WHERE state = 'pending';
"""
CLAIM = (
    "UPDATE bench_jobs SET attempts = attempts + 1, lease = $1, next_attempt_at = $2"
    " WHERE id IN (SELECT id FROM bench_jobs WHERE sink = $3 AND state = 'pending'"
    " AND next_attempt_at <= $4 ORDER BY next_attempt_at LIMIT $5 FOR UPDATE SKIP LOCKED)"
    " RETURNING id, message"
)
FINISH = "UPDATE bench_jobs SET state = 'done' WHERE id = $1 AND lease = $2"


def fill(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SETUP)
        connection.execute(
            "INSERT INTO bench_jobs (sink, next_attempt_at, message)"
            " SELECT 's', 0, repeat('x', 400) FROM generate_series(1, %s)",
            (ROWS,),
        )
        connection.execute("VACUUM ANALYZE bench_jobs")


async def drain(claim_once: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    async def loop() -> int:
        done = 0
        while n := await claim_once():
            done += n
        return done

    started, cpu = time.perf_counter(), time.process_time()
    total = sum(await asyncio.gather(*(loop() for _ in range(LOOPS))))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert total == ROWS, total
    return total / elapsed, cpu / total * 1e6


async def keep_session(connection: asyncpg.Connection) -> None:
    """No reset query on release, as notirouter's pool (psycopg's pool sends none either)."""


async def with_asyncpg(url: str, batch: int) -> tuple[float, float]:
    return await _asyncpg(url, batch, reset=True)


async def with_asyncpg_no_reset(url: str, batch: int) -> tuple[float, float]:
    return await _asyncpg(url, batch, reset=False)


async def _asyncpg(url: str, batch: int, *, reset: bool) -> tuple[float, float]:
    pool = await asyncpg.create_pool(
        url, min_size=LOOPS, max_size=LOOPS, reset=None if reset else keep_session
    )

    async def claim_once() -> int:
        token = secrets.randbits(62)
        now = time.time()
        async with pool.acquire() as connection:
            rows = await connection.fetch(CLAIM, token, now + 60, "s", now, batch)
        for row in rows:
            async with pool.acquire() as connection:
                await connection.execute(FINISH, row["id"], token)
        return len(rows)

    try:
        return await drain(claim_once)
    finally:
        await pool.close()


async def with_psycopg(url: str, batch: int) -> tuple[float, float]:
    pool = psycopg_pool.AsyncConnectionPool(
        url, min_size=LOOPS, max_size=LOOPS, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    claim = CLAIM.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s")
    claim = claim.replace("$4", "%s").replace("$5", "%s")
    finish = FINISH.replace("$1", "%s").replace("$2", "%s")

    async def claim_once() -> int:
        token = secrets.randbits(62)
        now = time.time()
        async with pool.connection() as connection:
            cursor = await connection.execute(claim, (token, now + 60, "s", now, batch))
            rows = await cursor.fetchall()
        for row in rows:
            async with pool.connection() as connection:
                await connection.execute(finish, (row[0], token))
        return len(rows)

    try:
        return await drain(claim_once)
    finally:
        await pool.close()


async def main(url: str) -> None:
    runs: dict[str, Callable[[str, int], Awaitable[tuple[float, float]]]] = {
        "asyncpg": with_asyncpg,
        "asyncpg-noreset": with_asyncpg_no_reset,
        "psycopg": with_psycopg,
    }
    for batch in (1, 32):
        found: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        for _ in range(REPEATS):
            for name, run in runs.items():  # alternate, so both see the same neighbours
                fill(url)
                found[name].append(await run(url, batch))
        for name, results in found.items():
            rate = statistics.median(r[0] for r in results)
            cpu = statistics.median(r[1] for r in results)
            print(
                f"batch {batch:2d} {name:15s} median {rate:6.0f} jobs/s,"
                f" client CPU {cpu:4.0f} us/job"
                f"  (jobs/s: {', '.join(f'{r[0]:.0f}' for r in results)})"
            )
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("DROP TABLE bench_jobs")


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres")
    )
