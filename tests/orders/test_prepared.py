"""The hot statements are prepared once per connection; a setting turns that off for a
connection pooler that cannot keep prepared statements."""

import pytest
from django.db import connection
from django.utils import timezone

from orders.services import RunResult, complete_many, place_order
from tests.claims import claim
from tests.conftest import run_python


def prepared_statements() -> dict[str, tuple[int, int]]:
    """This connection's prepared statements: the first words of each, and how often it
    ran with the plan kept for it (generic) and with one made for that run (custom)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        return {" ".join(statement.split()[:4]): (generic, custom) for statement, generic, custom in cursor.fetchall()}


def runs(plans: tuple[int, int]) -> int:
    return sum(plans)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_placing_claiming_and_completing_reuse_one_prepared_statement_each():
    for _ in range(5):
        place_order("noop")
    claimed = claim("S0", 2) + claim("S0", 2) + claim("S0", 2)
    now = timezone.now()
    complete_many("S0", [RunResult(order, None, now, now) for order in claimed[:2]])
    complete_many("S0", [RunResult(order, None, now, now) for order in claimed[2:]])

    prepared = prepared_statements()

    assert runs(prepared["WITH placed AS (INSERT"]) == 5
    assert runs(prepared["UPDATE orders_order AS o"]) == 2
    assert len(claimed) == 5
    # Planning a claim cost more than running it: every claim runs the plan kept for it.
    assert prepared["WITH picked AS MATERIALIZED"] == (3, 0)


PREPARED_BY_PLACING = """
import django
django.setup()
from django.db import connection, transaction
from orders.services import place_order
with transaction.atomic():
    place_order("noop")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        print(cursor.fetchone()[0])
    transaction.set_rollback(True)
"""


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_statements_can_be_turned_off():
    def prepared_after_placing(**env) -> int:
        return int(run_python(PREPARED_BY_PLACING, **env))

    assert prepared_after_placing() == 1
    assert prepared_after_placing(DATABASE_PREPARED_STATEMENTS="false") == 0
