"""Handlers for failover tests: they leave evidence of every completion that committed."""

import os
import threading
import time

from django.db import OperationalError, connection

from orders.handlers import handler

COMPLETIONS_TABLE = "test_completion"


def create_completions_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {COMPLETIONS_TABLE}")
        cursor.execute(f"CREATE TABLE {COMPLETIONS_TABLE} (order_id varchar(40), worker varchar(100), attempt integer)")


def completions() -> list[tuple[str, str, int]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT order_id, worker, attempt FROM {COMPLETIONS_TABLE}")
        return [tuple(row) for row in cursor.fetchall()]


def _write_completion(order) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {COMPLETIONS_TABLE} VALUES (%s, %s, %s)",
                       [str(order.pk), order.worker, order.attempt])


@handler("record", atomic=True)
def record(order):
    """Write (order, worker, attempt) inside the completion transaction, then take a while:
    the row commits only if this run still holds the order when it completes."""
    _write_completion(order)
    time.sleep(float(order.payload.get("seconds", 0.05)))
    return {"by": order.worker}


@handler("hang", atomic=True, visibility_timeout=1, timeout=1)
def hang(order):
    """Hangs on its first attempt (a stuck oven); later attempts are quick."""
    _write_completion(order)
    if order.attempt == 1:
        time.sleep(float(order.payload.get("seconds", 6)))
    return {"attempt": order.attempt}


class OvenExploded(BaseException):
    """Not an Exception: what a careless handler might raise."""


RAISABLE = {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit, "OvenExploded": OvenExploded}


@handler("raise")
def raise_base_exception(order):
    """Raise the BaseException the payload names."""
    raise RAISABLE[order.payload["raise"]]("raised by the handler")


@handler("append")
def append(order):
    """Append (order, attempt, pid) to the file the payload names, then take a while: every
    run of a handler leaves a line, whatever happens to its result afterwards."""
    with open(order.payload["path"], "a") as evidence:
        evidence.write(f"{order.pk} {order.attempt} {os.getpid()}\n")
    time.sleep(float(order.payload.get("seconds", 0.05)))
    return {"by": order.worker}


def appended(path) -> list[tuple[str, int, int]]:
    """The (order, attempt, pid) lines ``append`` left in ``path``."""
    try:
        lines = open(path).read().split()
    except FileNotFoundError:
        return []
    return [(lines[i], int(lines[i + 1]), int(lines[i + 2])) for i in range(0, len(lines), 3)]


@handler("show_setting")
def show_setting(order):
    """The value of a PostgreSQL setting on the worker's own connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [order.payload["name"]])
        return cursor.fetchone()[0]


@handler("lose_the_database_once")
def lose_the_database_once(order):
    """On its first attempt, the database goes away under it (its connection breaks)."""
    if order.attempt == 1:
        connection.close()
        raise OperationalError("server closed the connection unexpectedly")
    return {"attempt": order.attempt}


@handler("patient")
def patient(order):
    """Work for up to ``seconds``, stopping early once the order is cancelled; write what
    happened to the file ``path`` names."""
    deadline = time.monotonic() + float(order.payload.get("seconds", 30))
    while time.monotonic() < deadline:
        if order.cancel_requested():
            with open(order.payload["path"], "w") as evidence:
                evidence.write("stopped")
            return {"stopped": True}
        time.sleep(0.02)
    with open(order.payload["path"], "w") as evidence:
        evidence.write("finished")
    return {"stopped": False}


@handler("step", ordered=True)
def step(order):
    """One step of a customer's sequence (an ordered kind): takes payload["seconds"], and
    fails its first attempt when payload["fail_first"] is set."""
    if order.payload.get("fail_first") and order.attempt == 1:
        raise RuntimeError("the first try of this step fails")
    time.sleep(float(order.payload.get("seconds", 0)))
    return {"step": order.payload.get("n")}


# Gates the ``report`` handler waits at, by name: a test lets it on one step at a time.
GATES: dict[str, threading.Semaphore] = {}


@handler("report")
def report(order):
    """Report each of payload["steps"] ([value, note] pairs) as progress, and after each
    wait for the test to let it on (a release of GATES[payload["gate"]])."""
    gate = GATES[order.payload["gate"]]
    for value, note in order.payload["steps"]:
        order.progress(value, note)
        if not gate.acquire(timeout=30):
            raise RuntimeError("the test never let the handler on")
    return {"steps": len(order.payload["steps"])}
