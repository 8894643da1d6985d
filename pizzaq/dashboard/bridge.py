"""Committed changes -> the channel layer's dashboard group, coalesced.

On PostgreSQL it LISTENs for the orders and changes channels (behind a transaction pooler
with no direct URL for LISTEN, it looks again every POLL seconds); on SQLite it polls
``PRAGMA data_version``, which moves whenever another connection commits. Either way a
burst of changes becomes at most one message per COALESCE seconds, so a thousand
orders a second do not mean a thousand messages a second per browser."""

import asyncio
import logging
import sqlite3
import time

import psycopg
from channels.layers import get_channel_layer
from django.db import connections

from orders.notify import CHANGES_CHANNEL, ORDERS_CHANNEL
from workers.listener import listen_params

log = logging.getLogger("pizzaq.dashboard")

GROUP = "dashboard"
COALESCE = 0.3
SQLITE_POLL = 0.25
POLL = 1.0

_task: asyncio.Task | None = None


def ensure_running() -> None:
    """Start the bridge in this event loop once, when the first dashboard connects."""
    global _task
    loop = asyncio.get_running_loop()
    if _task is None or _task.done() or _task.get_loop() is not loop:
        _task = loop.create_task(_run())


async def stop() -> None:
    """Stop the bridge (tests start one per event loop)."""
    global _task
    if _task is not None and not _task.done():
        _task.cancel()
        await asyncio.gather(_task, return_exceptions=True)
    _task = None


async def _announce() -> None:
    await get_channel_layer().group_send(GROUP, {"type": "dashboard.changed"})


async def _run() -> None:
    changed = asyncio.Event()
    watcher = asyncio.create_task(_watcher()(changed))
    try:
        while True:
            await changed.wait()
            await asyncio.sleep(COALESCE)  # let the burst finish; one message covers it all
            changed.clear()
            await _announce()
    finally:
        watcher.cancel()


def _watcher():
    if connections["default"].vendor != "postgresql":
        return _poll_sqlite
    return _listen if listen_params() is not None else _poll


async def _poll(changed: asyncio.Event) -> None:
    while True:
        changed.set()
        await asyncio.sleep(POLL)


async def _listen(changed: asyncio.Event) -> None:
    params = listen_params()
    params.pop("cursor_factory", None)
    lost_at = None  # an outage is told once going and once coming back, not every second
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                await conn.execute(f"LISTEN {ORDERS_CHANNEL}")
                await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                if lost_at is not None:
                    log.warning("dashboard LISTEN is back after %.1f s", time.monotonic() - lost_at)
                    lost_at = None
                async for _ in conn.notifies():
                    changed.set()
        except psycopg.Error as error:
            if lost_at is None:
                log.warning("dashboard LISTEN lost its connection (%s); retrying every second", error)
                lost_at = time.monotonic()
            changed.set()
            await asyncio.sleep(1.0)


async def _poll_sqlite(changed: asyncio.Event) -> None:
    path = connections["default"].settings_dict["NAME"]
    connection = sqlite3.connect(path, check_same_thread=False)
    last = None
    while True:
        version = connection.execute("PRAGMA data_version").fetchone()[0]
        if version != last:
            last = version
            changed.set()
        await asyncio.sleep(SQLITE_POLL)
