"""Handlers for failover tests: they leave evidence of every completion that committed."""

import time

from django.db import connection

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
