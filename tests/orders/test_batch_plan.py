"""How PostgreSQL runs the batch completion: each order found by its key, whatever the
table's statistics say. (A worker's results go out in batches of up to a hundred, many
times a second: a plan that compares every result with every running order costs more
than the rest of the statement.)"""

import itertools
import re

import pytest
from django.db import connection
from django.utils import timezone

from orders.services import COMPLETE_BATCH_PLAN, complete_batch_sql, place_orders
from orders.specs import OrderSpec
from tests.claims import claim


def plan(cursor, sql: str, params: list) -> str:
    """The plan the batch completion runs with: under its settings, prepared."""
    numbers = (f"${n}" for n in itertools.count(1))
    assert "%%" not in sql
    cursor.execute(COMPLETE_BATCH_PLAN)
    cursor.execute(f"PREPARE batch_plan AS {re.sub('%s', lambda _: next(numbers), sql)}")
    cursor.execute(f"EXPLAIN (COSTS OFF) EXECUTE batch_plan({', '.join(['%s'] * len(params))})", params)
    plan = "\n".join(row[0] for row in cursor.fetchall())
    cursor.execute("DEALLOCATE batch_plan")
    return plan


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_of_results_finds_each_order_by_its_key_on_a_table_never_analyzed_and_analyzed():
    place_orders([OrderSpec("noop", {"n": n}) for n in range(300)])
    running = claim("S0", 200)
    batch = running[:100]
    now = timezone.now()
    params = ["done", "done", "", [o.pk for o in batch], [o.attempt for o in batch], [None] * len(batch),
              [now] * len(batch), [now] * len(batch), [now.isoformat()] * len(batch), "S0"]
    plans = {}
    with connection.cursor() as cursor:
        # A copy of the orders that no one has analyzed (autovacuum leaves temporary tables
        # alone), which this transaction's statements read in place of the real one: the
        # state of a table just deployed, or just filled by a rush.
        cursor.execute("CREATE TEMPORARY TABLE orders_order (LIKE public.orders_order INCLUDING ALL)")
        cursor.execute("INSERT INTO orders_order SELECT * FROM public.orders_order")
        plans["never analyzed"] = plan(cursor, complete_batch_sql(), params)
        cursor.execute("ANALYZE orders_order")
        plans["analyzed"] = plan(cursor, complete_batch_sql(), params)
        cursor.execute("DROP TABLE pg_temp.orders_order")

    for state, found in plans.items():
        assert "Index Scan using" in found and "Index Cond: (id = v.id)" in found, (state, found)
        assert "Join Filter" not in found and "Hash" not in found, (state, found)
