"""How PostgreSQL runs the batch completion: each order found by its key, whatever the
table's statistics say. (A worker's results go out in batches of up to a hundred, many
times a second: a plan that compares every result with every running order costs more
than the rest of the statement.)"""

import pytest
from django.db import connection
from django.utils import timezone

from orders.prepared import explain_planned
from orders.services import COMPLETE_BATCH_PLAN, RunResult, complete_batch_params, complete_batch_sql, place_orders
from orders.specs import OrderSpec
from tests.claims import claim


def plan(cursor, params: list) -> str:
    """The plan the batch completion runs with: under its settings, prepared."""
    return explain_planned(cursor, COMPLETE_BATCH_PLAN, complete_batch_sql(), params, "COSTS OFF")


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_batch_of_results_finds_each_order_by_its_key_on_a_table_never_analyzed_and_analyzed():
    place_orders([OrderSpec("noop", {"n": n}) for n in range(300)])
    running = claim("S0", 200)
    batch = running[:100]
    now = timezone.now()
    params = complete_batch_params("S0", [RunResult(order, None, now, now) for order in batch])
    plans = {}
    with connection.cursor() as cursor:
        # A copy of the orders that no one has analyzed (autovacuum leaves temporary tables
        # alone), which this transaction's statements read in place of the real one: the
        # state of a table just deployed, or just filled by a rush.
        cursor.execute("CREATE TEMPORARY TABLE orders_order (LIKE public.orders_order INCLUDING ALL)")
        cursor.execute("INSERT INTO orders_order SELECT * FROM public.orders_order")
        plans["never analyzed"] = plan(cursor, params)
        cursor.execute("ANALYZE orders_order")
        plans["analyzed"] = plan(cursor, params)
        cursor.execute("DROP TABLE pg_temp.orders_order")

    for state, found in plans.items():
        assert "Index Scan using" in found and "Index Cond: (id = v.id)" in found, (state, found)
        assert "Join Filter" not in found and "Hash" not in found, (state, found)
