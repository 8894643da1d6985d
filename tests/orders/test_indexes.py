"""The queries that run every second or so (the notifier's, the dashboard's) and the order
lists' filters are served by indexes, on PostgreSQL. The table is mostly finished orders,
millions of them after a busy week: a query that reads it whole is one a user waits for.
Sequential scans are priced out here (``enable_seqscan`` off), so a plan that still reads
the table means that no index can serve the query."""

import pytest
from django.db import connection, transaction
from django.db.models import Count

from orders.models import Order, Status

IN_PLAY = {
    "queued and running, by status (the notifier's depth sample)":
        lambda: Order.objects.in_play().values_list("status").annotate(n=Count("id")),
    "queued and running, by queue (the dashboard's queues)":
        lambda: Order.objects.in_play().values_list("queue", "status").annotate(n=Count("id")),
    "a closed shop's take-away orders": lambda: Order.objects.in_play().filter(pinned_to="S1"),
}
UNCOMMON = [Status.WAITING, Status.DEAD, Status.EXPIRED, Status.CANCELLED]


def plan(queryset) -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        return queryset.explain()


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("query", IN_PLAY)
def test_orders_in_play_are_read_from_indexes(query):
    found = plan(IN_PLAY[query]())

    assert "Seq Scan" not in found, found
    assert "order_claim_idx" in found and "order_running_idx" in found, found


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("status", UNCOMMON)
def test_the_newest_orders_of_an_uncommon_status_are_read_without_reading_others(status):
    found = plan(Order.objects.filter(status=status).order_by("-id")[:50])

    assert "Seq Scan" not in found and "Sort" not in found, found
    assert "Filter" not in found, found  # no order of another status read and dropped


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("status", [Status.QUEUED, Status.RUNNING, Status.DONE])
def test_the_newest_orders_of_a_common_status_are_read_from_an_index(status):
    found = plan(Order.objects.filter(status=status).order_by("-id")[:50])

    assert "Seq Scan" not in found, found
