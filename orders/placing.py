"""Placing orders: checked specs become rows in as few round trips as PostgreSQL allows.

One order is one prepared statement (INSERT and NOTIFY together); many go through binary COPY
(orders/copying.py), so PostgreSQL and Python work side by side. SQLite takes Django's bulk_create.
"""

import copy
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterable

from django.db import connection, transaction
from django.db.models import JSONField
from django.utils import timezone

from orders import copying, dependencies, sequences, uniqueness
from orders.models import Order
from orders.notify import ORDERS_CHANNEL, notify_now
from orders.prepared import prepared_cursor
from orders.specs import OrderBuilder, OrderRejected, OrderSpec, unique_period_seconds

BULK_BATCH_SIZE = 2000
# Placing more orders than this at once goes through COPY. One INSERT of many rows is a
# long statement, which psycopg parses again on every call (it keeps the parse of short
# statements only): from 10 orders a call COPY is as fast, and from 25 on twice as fast.
COPY_THRESHOLD = 9


def place_order(kind: str, payload: dict | None = None, **options) -> Order:
    """Accept one order; it is committed (durable) when this returns, unless the caller
    holds an outer transaction, in which case it commits with that transaction."""
    return place_orders([OrderSpec(kind, payload, **options)])[0]


def place_orders(specs: Iterable[OrderSpec]) -> list[Order]:
    """Accept many orders in one transaction: all of them, or (on a bad spec) none. An
    order whose unique key another order holds is not placed: that order is given back
    in its place, with ``duplicate`` set."""
    now = timezone.now()
    build = OrderBuilder(now)
    specs, rows = list(specs), []
    for index, spec in enumerate(specs):
        try:
            rows.append(build.row(spec))
        except OrderRejected as rejected:
            rejected.index = index
            raise
    sequenced = sequences.keys_of(specs)
    if sequenced or any(spec.after for spec in specs):
        return _place_waiting(specs, rows, sequenced, now)
    if any(spec.unique_key is not None for spec in specs):
        return _place_unique(specs, rows, now)
    return _insert(rows)


# --- groups and chains -----------------------------------------------------------------


@dataclass
class Group:
    """Orders placed together: the children run in parallel; the callback, if any, once
    they are all done."""

    children: list[Order]
    callback: Order | None


def place_group(children, then: OrderSpec | None = None) -> Group:
    """Fan out, fan in: place ``children`` (OrderSpecs) and a callback ``then`` that waits
    for all of them, in one transaction: all of them are placed, or none."""
    children = list(children)
    specs = children if then is None else [*children, replace(then, after=[*then.after, *children])]
    with transaction.atomic():
        orders = place_orders(specs)
    return Group(orders[:len(children)], orders[len(children)] if then is not None else None)


def place_chain(steps) -> list[Order]:
    """Place ``steps`` (OrderSpecs) so that each runs after the one before: a -> b -> c."""
    chained = []
    for step in steps:
        chained.append(replace(step, after=[*step.after, chained[-1]]) if chained else step)
    return place_orders(chained)


def _place_waiting(specs: list[OrderSpec], rows: list[tuple], sequenced: dict, now) -> list[Order]:
    """Orders placed after others, and the orders of sequences: each learns what it waits
    for, and the Dependency rows are written with it, in one transaction."""
    ids = [row[0] for row in rows]
    with transaction.atomic():
        predecessors = sequences.predecessors(sequenced, ids) if sequenced else {}
        waits = dependencies.waits_of(specs, predecessors)
        for index in waits.awaited_in_call():
            if specs[index].unique_key is not None:
                raise OrderRejected("an order that another of the same call waits for cannot have a unique_key",
                                    field="unique_key")
        edges = dependencies.apply(rows, ids, waits, now)
        if any(spec.unique_key is not None for spec in specs):
            orders = _place_unique(specs, rows, now)
        else:
            orders = _insert(rows)
        dependencies.record(edges, {order.pk for order in orders if not order.duplicate})
    return orders


def _insert(rows: list[tuple]) -> list[Order]:
    if not rows:
        return []
    if connection.vendor != "postgresql":
        orders = [Order(*row) for row in rows]
        with transaction.atomic():
            Order.objects.bulk_create(orders, batch_size=BULK_BATCH_SIZE)
        return orders
    if len(rows) <= COPY_THRESHOLD:
        _insert_and_notify(rows)  # one statement is a transaction of its own
        return [Order.from_db(connection.alias, None, row) for row in rows]
    with transaction.atomic():
        orders = _copy_in(rows)
        # Delivered when this transaction commits, like the INSERT's.
        notify_now(ORDERS_CHANNEL)
    return orders


def _place_unique(specs: list[OrderSpec], rows: list[tuple], now) -> list[Order]:
    """Take each unique key before its order is written, in the same transaction: an
    order whose key is held (or taken by an earlier order of this batch) is not written."""
    ids = [row[0] for row in rows]
    holders, first_with_key = {}, {}
    with transaction.atomic():
        for index, spec in enumerate(specs):
            if spec.unique_key is None:
                continue
            if spec.unique_key in first_with_key:
                first = first_with_key[spec.unique_key]
                holders[index] = holders.get(first, ids[first])
                continue
            first_with_key[spec.unique_key] = index
            period = unique_period_seconds(spec)
            if (holder := uniqueness.take(spec.unique_key, spec.unique_scope, period, ids[index], now)) is not None:
                holders[index] = holder
        placed = {order.pk: order for order in _insert([row for index, row in enumerate(rows) if index not in holders])}
        held = Order.objects.in_bulk([holder for holder in holders.values() if holder not in placed])
    orders = []
    for index, order_id in enumerate(ids):
        if index in holders:
            order = copy.copy(held.get(holders[index]) or placed[holders[index]])
            order.duplicate = True
        else:
            order = placed[order_id]
        orders.append(order)
    return orders


def _insert_and_notify(rows: list[tuple]) -> None:
    """INSERT and NOTIFY in one statement, one round trip. PostgreSQL delivers a NOTIFY
    only when its transaction commits, and identical ones in a transaction only once, so
    idle workers wake once the orders are visible to them, not before, and once."""
    json_columns = _json_columns()
    params = [json.dumps(value) if i in json_columns and value is not None else value
              for row in rows for i, value in enumerate(row)]
    with prepared_cursor() as cursor:
        cursor.execute(_insert_sql(len(rows)), [*params, ORDERS_CHANNEL])


@lru_cache(maxsize=1)
def _json_columns() -> frozenset:
    return frozenset(i for i, field in enumerate(Order._meta.concrete_fields) if isinstance(field, JSONField))


@lru_cache(maxsize=1)
def _column_names() -> str:
    """Order's columns, quoted, in field order: the order of the rows OrderBuilder makes."""
    return ", ".join(connection.ops.quote_name(field.column) for field in Order._meta.concrete_fields)


@lru_cache(maxsize=COPY_THRESHOLD)
def _insert_sql(count: int) -> str:
    """The statement for ``count`` rows, built once: building it cost as much as sending it.
    The row values go in as psycopg adapts them, JSON as text cast to jsonb."""
    row = "(" + ", ".join("%s::jsonb" if isinstance(field, JSONField) else "%s"
                          for field in Order._meta.concrete_fields) + ")"
    return (f"WITH placed AS (INSERT INTO {Order._meta.db_table} ({_column_names()})"
            f" VALUES {', '.join([row] * count)} RETURNING 1) SELECT pg_notify(%s, '') FROM placed LIMIT 1")


# The rows OrderBuilder makes hold these, in this order.
_ORDER_FIELDS = tuple(field.name for field in Order._meta.concrete_fields)


def _copy_in(rows: list[tuple]) -> list[Order]:
    """Stream rows in with binary COPY; the Orders to return are built while they are sent."""
    return copying.copy_in(Order, _ORDER_FIELDS, rows, lambda: [Order.from_db(connection.alias, None, row) for row in rows])
