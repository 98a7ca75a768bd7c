"""Operator commands (``status``, ``trace``, ``dead`` ...) run in-process against a queue that a
test's ``serve`` is using, and waiting on what they show."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from notirouter.cli import main

T = TypeVar("T")

# A secret part of a sink's URL that a service echoes back: it must never be shown.
SECRET = "s3cr3t-path-0123456789"


async def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``notirouter ARGV`` in a thread (the served loop keeps running): code, stdout, stderr."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    """The JSON a command printed; it must have exited 0."""
    code, out, err = await run_cli(argv, capsys)
    assert code == 0, err
    return json.loads(out)


async def wait_until(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    what: str,
    timeout: float = 30.0,
) -> T:
    """``probe()`` again and again until ``done`` holds of its result (that result).

    The deadline is generous for a busy machine; a condition still false at it fails the test
    with the last result seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        seen = await probe()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout:g}s; last seen: {seen!r}")
        await asyncio.sleep(0.05)
