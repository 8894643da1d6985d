"""What every driver shares: its command line, timing, pacing and the JSON it prints.

A driver runs inside its queue's own virtualenv and does one client-side job (place
orders one by one, in a batch, or paced); the orchestrator reads the JSON it prints."""

import argparse
import asyncio
import json
import time


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("queue")
    p.add_argument("command")
    p.add_argument("--n", type=int, default=0, help="How many jobs")
    p.add_argument("--every-ms", type=float, default=20.0, help="Paced placing: one job per this many ms")
    p.add_argument("--seconds", type=float, default=10.0, help="Paced placing: for this long")
    p.add_argument("--sleep", type=float, default=60.0, help="The long job's length (recovery)")
    p.add_argument("--url", default="", help="HTTP API base URL")
    p.add_argument("--token", default="", help="HTTP API bearer token")
    p.add_argument("--batch-size", type=int, default=10, help="pgqueuer worker: jobs per dequeue (its default)")
    p.add_argument("--heartbeat-timeout", type=float, default=30, help="pgqueuer worker: re-pick after (its default)")
    p.add_argument("--calls", type=int, default=1, help="Repeated placing: how many calls, each timed")
    p.add_argument("--per-call", type=int, default=0, help="Bulk placing: jobs per call (0: all in one)")
    return p


def calls_of(n: int, per_call: int) -> list[range]:
    """The job numbers 0..n-1, in calls of ``per_call`` (0: one call of all)."""
    size = per_call or n
    return [range(first, min(n, first + size)) for first in range(0, n, size)]


def timed(func, *args) -> float:
    started = time.perf_counter()
    func(*args)
    return time.perf_counter() - started


def timed_calls(build, place, calls: int) -> list[float]:
    """Seconds of each of ``calls`` calls of ``place(build())``. What to place is built
    afresh for each call (a signature placed twice would reuse its ids), before its timer
    starts, as the single-call figures leave it out too."""
    return [timed(place, build()) for _ in range(calls)]


def paced(place, every_ms: float, seconds: float) -> int:
    """Call ``place(seq)`` every ``every_ms`` on a fixed schedule (no drift) for ``seconds``;
    returns how many were placed."""
    count = int(seconds * 1000 / every_ms)
    started = time.perf_counter()
    for seq in range(count):
        delay = started + seq * every_ms / 1000 - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        place(seq)
    return count


async def seconds_taken(awaitable) -> float:
    """``timed`` for a coroutine: the seconds ``awaitable`` took."""
    started = time.perf_counter()
    await awaitable
    return time.perf_counter() - started


async def paced_async(place, every_ms: float, seconds: float) -> int:
    """``paced`` for an async client: ``await place(seq)`` on the same fixed schedule."""
    loop = asyncio.get_running_loop()
    count = int(seconds * 1000 / every_ms)
    started = loop.time()
    for seq in range(count):
        await asyncio.sleep(max(0.0, started + seq * every_ms / 1000 - loop.time()))
        await place(seq)
    return count


def emit(**result) -> None:
    print(json.dumps(result), flush=True)
