"""Summarise py-spy collapsed stacks (``bench/run.py --profile DIR``): where the time goes.

Usage: ``python bench/profile_summary.py DIR/webhook-c64.folded [--top N] [--match TEXT]
[--thread NAME]``

Prints the share of samples per thread, then the functions with the most *self* time (the
frame on top of the stack) and the most *inclusive* time (anywhere on the stack, counted once
per sample). ``--match`` limits the inclusive list to frames whose text contains TEXT (e.g.
``notirouter/`` for our own code); ``--thread MainThread`` keeps only the event loop's samples.
py-spy counts a thread blocked in a system call (``select``, ``fsync``, a queue ``get``) as
busy, so read the event loop's ``EpollSelector.select`` share as its idle time. Line numbers
are dropped so a function counts as one.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

LINE_NUMBER = re.compile(r":\d+\)$")


def function_of(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``."""
    return LINE_NUMBER.sub(")", frame)


def summarise(path: Path, top: int, match: str | None, thread: str | None = None) -> str:
    """The report as text."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if thread is not None and thread not in frames[0]:
            continue
        total += count
        threads[frames[0]] += count
        functions = [function_of(frame) for frame in frames[1:]]
        if functions:
            own[functions[-1]] += count
        for function in set(functions):
            inclusive[function] += count
    if not total:
        return f"{path}: no samples"

    def share(count: int) -> str:
        return f"{100 * count / total:5.1f}%"

    lines = [f"{path}: {total} samples"]
    lines += ["", "threads:"] + [f"  {share(c)}  {t}" for t, c in threads.most_common()]
    lines += ["", f"top {top} self time:"]
    lines += [f"  {share(c)}  {f}" for f, c in own.most_common(top)]
    chosen = [(f, c) for f, c in inclusive.most_common() if match is None or match in f]
    lines += ["", f"top {top} inclusive time{f' ({match})' if match else ''}:"]
    lines += [f"  {share(c)}  {f}" for f, c in chosen[:top]]
    return "\n".join(lines)


def main() -> None:
    """Parse the options and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="a .folded file written by --profile")
    parser.add_argument("--top", type=int, default=25, help="rows per list")
    parser.add_argument("--match", help="inclusive list: only frames containing this text")
    parser.add_argument(
        "--thread", help="only this thread (e.g. MainThread, the event loop); shares of its samples"
    )
    args = parser.parse_args()
    print(summarise(args.profile, args.top, args.match, args.thread))


if __name__ == "__main__":
    main()
