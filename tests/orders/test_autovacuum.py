"""The migrations tune autovacuum for the tables that turn over all day (PostgreSQL)."""

import pytest
from django.db import connection


def reloptions(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(reloptions, '{}') FROM pg_class WHERE relname = %s", [table])
        return set(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db
def test_queue_tables_are_vacuumed_early_and_analysed_often():
    assert {"autovacuum_vacuum_scale_factor=0.01", "autovacuum_analyze_scale_factor=0.02",
            "autovacuum_vacuum_threshold=1000"} <= reloptions("orders_order")
    for table in ("workers_worker", "workers_notifierlease"):
        assert {"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=200"} <= reloptions(table)
