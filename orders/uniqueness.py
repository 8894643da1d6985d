"""Unique orders: a key only one order holds at a time.

The key's row in UniqueKey is taken with INSERT ... ON CONFLICT DO NOTHING, the same
statement on PostgreSQL and SQLite, in the placing transaction. Its primary key decides
between two placers: the second waits on the index until the first commits (or rolls
back, leaving the key free). If the key is held, its row is locked and the holder looked
at in statements of their own, which see what has committed by then: the key stays with
the holder while it is in the key's scope (queued; queued or running; or within its
period), or passes to the new order. No advisory lock, no read-then-insert window.
"""

from datetime import timedelta

from django.db import connection

from orders.models import Order, Status, UniqueKey, UniqueScope

# The statuses in which an order keeps a key of each scope.
HOLDING = {UniqueScope.QUEUED: [Status.WAITING, Status.QUEUED],
           UniqueScope.ACTIVE: [Status.WAITING, Status.QUEUED, Status.RUNNING]}


def take(key: str, scope: str, period: float | None, order_id, now):
    """Take ``key`` for the order ``order_id`` about to be placed, inside the placing
    transaction. None if it is ours now; else the id of the order that holds it."""
    expires_at = now + timedelta(seconds=period) if scope == UniqueScope.PERIOD else None
    fields = {"key": key, "scope": scope, "order_id": order_id, "expires_at": expires_at, "created_at": now}
    while not _insert_if_free(fields):
        held = UniqueKey.objects.select_for_update().filter(key=key).first()
        if held is None:
            continue  # pruned just now: try again
        if _still_held(held, now):
            return held.order_id
        UniqueKey.objects.filter(key=key).update(**{name: value for name, value in fields.items() if name != "key"})
        break
    return None


def _still_held(held: UniqueKey, now) -> bool:
    holder = Order.objects.filter(pk=held.order_id)
    if held.scope == UniqueScope.PERIOD:
        return held.expires_at > now and holder.exists()
    return holder.filter(status__in=HOLDING[held.scope]).exists()


def _insert_if_free(fields: dict) -> bool:
    """Insert the key's row unless it exists; whether it was inserted."""
    meta = UniqueKey._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in fields)
    values = [meta.get_field(name).get_db_prep_value(value, connection) for name, value in fields.items()]
    sql = (f"INSERT INTO {meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(values))})"
           f" ON CONFLICT ({connection.ops.quote_name('key')}) DO NOTHING RETURNING 1")
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone() is not None
