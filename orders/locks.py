"""Cluster-wide locks held until the current transaction ends."""

from django.db import connection


def hold_until_commit(key: int) -> None:
    """Take the lock ``key`` (any fixed number) until the current transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite: our transactions are IMMEDIATE,
    so holding one already excludes every other writer."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
