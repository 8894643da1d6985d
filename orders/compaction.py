"""Giving disk back after a large prune. VACUUM makes the pages of deleted rows reusable
but keeps them, in the table and (most of all) in its indexes, which after a burst of a
million orders stay at their peak size. Rebuilding the indexes concurrently shrinks them
to what the rows left need, without blocking placing, claiming or completing."""

from django.db import connection

from orders.models import Order


def index_sizes() -> dict[str, int]:
    """Bytes on disk of each index of the orders table (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
            " WHERE indrelid = %s::regclass ORDER BY 1", [Order._meta.db_table])
        return dict(cursor.fetchall())


def rebuild_indexes() -> tuple[int, int]:
    """REINDEX the orders table CONCURRENTLY; returns its index bytes before and after.
    Must run outside a transaction (PostgreSQL refuses a concurrent rebuild inside one)."""
    before = sum(index_sizes().values())
    with connection.cursor() as cursor:
        cursor.execute(f"REINDEX TABLE CONCURRENTLY {connection.ops.quote_name(Order._meta.db_table)}")
    return before, sum(index_sizes().values())
