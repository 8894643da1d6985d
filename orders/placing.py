"""Placing orders: checked specs become rows in as few round trips as PostgreSQL allows.

One order is one statement (INSERT and NOTIFY together); many go through binary COPY,
sent by a second thread (psycopg's queued writer) while this one goes on, so PostgreSQL
and Python work side by side. SQLite takes Django's bulk_create.
"""

from functools import lru_cache
from typing import Iterable

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models.sql import InsertQuery
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from orders.models import Order
from orders.notify import ORDERS_CHANNEL, notify_now
from orders.specs import OrderBuilder, OrderRejected, OrderSpec

BULK_BATCH_SIZE = 2000
# Placing more orders than this at once goes through COPY.
COPY_THRESHOLD = 50


def place_order(kind: str, payload: dict | None = None, **options) -> Order:
    """Accept one order; it is committed (durable) when this returns, unless the caller
    holds an outer transaction, in which case it commits with that transaction."""
    return place_orders([OrderSpec(kind, payload, **options)])[0]


def place_orders(specs: Iterable[OrderSpec]) -> list[Order]:
    """Accept many orders in one transaction: all of them, or (on a bad spec) none."""
    build = OrderBuilder(timezone.now())
    rows = []
    for index, spec in enumerate(specs):
        try:
            rows.append(build.row(spec))
        except OrderRejected as rejected:
            rejected.index = index
            raise
    if connection.vendor != "postgresql":
        orders = [Order(*row) for row in rows]
        with transaction.atomic():
            Order.objects.bulk_create(orders, batch_size=BULK_BATCH_SIZE)
    elif len(rows) <= COPY_THRESHOLD:
        orders = [Order(*row) for row in rows]
        _insert_and_notify(orders)  # one statement is a transaction of its own
    else:
        with transaction.atomic():
            orders = _copy_in(rows)
            # Delivered when this transaction commits, like the INSERT's.
            notify_now(ORDERS_CHANNEL)
    for order in orders:
        order._state.adding, order._state.db = False, connection.alias
    return orders


def _insert_and_notify(orders: list[Order]) -> None:
    """INSERT and NOTIFY in one statement, one round trip. PostgreSQL delivers a NOTIFY
    only when its transaction commits, and identical ones in a transaction only once, so
    idle workers wake once the orders are visible to them, not before, and once."""
    db = connections[DEFAULT_DB_ALIAS]
    if len(orders) == 1:
        # The common case, with the statement compiled once: compiling it every time
        # cost as much as sending it.
        fields = Order._meta.concrete_fields
        insert_sql = _single_insert_sql()
        params = [field.get_db_prep_save(getattr(orders[0], field.attname), db) for field in fields]
    else:
        [(insert_sql, params)] = _insert_query(orders).get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    with db.cursor() as cursor:
        cursor.execute(f"WITH placed AS ({insert_sql} RETURNING 1) SELECT pg_notify(%s, '') FROM placed LIMIT 1",
                       [*params, ORDERS_CHANNEL])


def _insert_query(orders: list[Order]) -> InsertQuery:
    query = InsertQuery(Order)
    query.insert_values(Order._meta.concrete_fields, orders)
    return query


@lru_cache(maxsize=1)
def _single_insert_sql() -> str:
    [(insert_sql, _)] = _insert_query([Order(bucket=0)]).get_compiler(using=DEFAULT_DB_ALIAS).as_sql()
    return insert_sql


# --- COPY ------------------------------------------------------------------------------

# PostgreSQL's type for each kind of field Order has: binary COPY needs them exactly.
_COPY_TYPES = {
    "UUIDField": "uuid", "CharField": "text", "TextField": "text", "JSONField": "jsonb",
    "SmallIntegerField": "int2", "IntegerField": "int4", "DateTimeField": "timestamptz",
}


@lru_cache(maxsize=1)
def _copy_statement() -> tuple[str, list[str]]:
    fields = Order._meta.concrete_fields
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    types = [_COPY_TYPES[field.get_internal_type()] for field in fields]
    return f"COPY {Order._meta.db_table} ({names}) FROM STDIN (FORMAT BINARY)", types


def _copy_in(rows: list[tuple]) -> list[Order]:
    """Stream rows in with binary COPY: no SQL to build or parse per row, no text to
    format. The Orders to return are built while the writer thread sends the rows."""
    statement, types = _copy_statement()
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(statement, writer=QueuedLibpqWriter(raw)) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
            return [Order(*row) for row in rows]
