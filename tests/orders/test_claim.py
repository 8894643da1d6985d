"""Claiming: order of service, readiness, and no order claimed twice."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from orders.claiming import Claim
from orders.models import Order, Status
from orders.services import OrderSpec, place_order, place_orders
from tests.claims import claim


@pytest.mark.django_db
def test_claim_serves_highest_priority_first_and_oldest_first_within_a_priority():
    placed = [place_order("noop", {"n": n}, priority=p) for n, p in enumerate([0, 5, 0, -3, 5, 100])]

    taken = [claim("S0", 1)[0].payload["n"] for _ in placed]

    assert taken == [5, 1, 4, 0, 2, 3]


@pytest.mark.django_db
def test_claim_marks_orders_running_with_a_fresh_fencing_token():
    place_orders([OrderSpec("noop") for _ in range(3)])

    claimed = claim("S0", 2)

    assert len(claimed) == 2
    for order in claimed:
        order.refresh_from_db()
        assert (order.status, order.worker, order.attempt) == (Status.RUNNING, "S0", 1)
        assert order.lease_expires_at > timezone.now()
    assert Order.objects.filter(status=Status.QUEUED).count() == 1


@pytest.mark.django_db
def test_claim_never_returns_more_than_its_limit():
    place_orders([OrderSpec("noop") for _ in range(10)])

    assert [len(claim("S0", 3)) for _ in range(5)] == [3, 3, 3, 1, 0]


@pytest.mark.django_db
def test_claim_skips_orders_not_yet_due_and_orders_past_their_ttl():
    place_order("noop", delay=60)
    expired = place_order("noop", ttl=30)
    Order.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert claim("S0", 10) == []


@pytest.mark.django_db
def test_pinned_orders_go_only_to_their_shop():
    place_order("deliver", pinned_to="S1")

    assert claim("S0", 10) == []
    assert len(claim("S1", 10)) == 1


@pytest.mark.django_db
def test_claim_with_buckets_takes_only_orders_in_those_buckets(pizzaq_settings):
    pizzaq_settings(buckets=4)
    placed = place_orders([OrderSpec("noop", routing_key=f"customer-{n}") for n in range(40)])
    wanted = {placed[0].bucket}

    claimed = claim("S0", 100, buckets=wanted)

    assert {order.bucket for order in claimed} == wanted
    assert len(claimed) == sum(order.bucket in wanted for order in placed)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_claim_an_order_twice():
    place_orders([OrderSpec("noop") for _ in range(2000)])
    claims: dict[str, list] = {f"C{n}": [] for n in range(4)}
    start = threading.Barrier(4)

    def claimer(name):
        start.wait()
        try:
            while batch := claim(name, 25):
                claims[name].extend(order.pk for order in batch)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer, args=(name,)) for name in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every_claim = [pk for pks in claims.values() for pk in pks]
    assert len(every_claim) == 2000
    assert len(set(every_claim)) == 2000
    assert all(claims.values()), "each claimer should have won some orders"
    for name, pks in claims.items():
        assert Order.objects.filter(pk__in=pks, worker=name, attempt=1).count() == len(pks)


BACKLOG = 20_000


def analyze():
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")


def statistics_never_taken():
    """As on a new installation: the orders table has never been analyzed."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pg_statistic WHERE starelid = 'orders_order'::regclass")


def statistics_of_a_quiet_queue():
    """Statistics taken when every order was finished: they say none is queued."""
    place_orders([OrderSpec("noop") for _ in range(300)])
    Order.objects.update(status=Status.DONE)
    analyze()


def place_the_backlog():
    place_orders([OrderSpec("noop") for _ in range(BACKLOG)])


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("build_the_backlog", [
    # A rush: thousands of orders arrive faster than autovacuum analyzes the table.
    lambda: (statistics_never_taken(), place_the_backlog()),
    lambda: (statistics_of_a_quiet_queue(), place_the_backlog()),
    # A steady backlog, its statistics up to date.
    lambda: (place_the_backlog(), analyze()),
], ids=["rush-on-a-new-table", "rush-after-a-quiet-spell", "steady-backlog"])
def test_a_claim_walks_the_claim_index_and_finds_its_orders_by_id_whatever_the_statistics(build_the_backlog):
    # Otherwise the claim fetched and sorted the whole backlog, or looked each picked order
    # up by walking the claim index, or hashed the whole table to find them: work that
    # grows with the backlog, on every claim.
    build_the_backlog()

    plan = Claim("S0").explain(10)

    assert "Index Scan using order_claim_idx" in plan, plan
    assert "Sort" not in plan, plan
    assert "Index Scan using orders_order_pkey" in plan, plan  # each picked order, by its id
    assert "Seq Scan on orders_order" not in plan, plan  # (the few paused queues may be read whole)
    assert Order.objects.filter(status=Status.QUEUED).count() == BACKLOG  # explaining claimed nothing


@pytest.mark.django_db
def test_a_claimed_order_holds_the_same_values_as_the_order_read_back():
    place_order("noop", {"size": "large", "toppings": ["basil"]}, priority=7, ttl=600, routing_key="table-4")

    claimed = claim("S0", 1)[0]
    stored = Order.objects.get(pk=claimed.pk)

    for field in Order._meta.concrete_fields:
        assert getattr(claimed, field.attname) == getattr(stored, field.attname), field.name
    for moment in (claimed.created_at, claimed.run_after, claimed.expires_at, claimed.started_at):
        assert moment.utcoffset() == timedelta(0)


@pytest.mark.django_db
def test_a_worker_named_with_percent_signs_and_braces_claims_its_own_orders():
    name = "S%s{0}%"
    mine = place_order("deliver", pinned_to=name)

    claimed = claim(name, 10)

    assert [order.pk for order in claimed] == [mine.pk]
    assert Order.objects.get(pk=mine.pk).worker == name


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_claim_of_a_worker_named_with_percent_signs_and_braces_can_be_explained():
    name = "S%s{0}%"
    place_order("deliver", pinned_to=name)

    plan = Claim(name).explain(10)

    assert "order_claim_idx" in plan and "rows=1 loops=1" in plan, plan
    assert Order.objects.filter(status=Status.QUEUED).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_claimed_order_carries_what_a_run_reads_and_fetches_the_rest_only_when_asked(django_assert_num_queries):
    place_order("noop", {"n": 1}, concurrency_key="customer-7")
    [order] = claim("S0", 1)

    with django_assert_num_queries(0):
        seen = (order.kind, order.payload, order.worker, order.attempt, order.history, order.last_error,
                order.started_at, order.finished_at, order.lease_expires_at, order.max_attempts)
    assert seen[:4] == ("noop", {"n": 1}, "S0", 1)
    with django_assert_num_queries(1):
        assert order.concurrency_key == "customer-7"
    # What the claim wrote and filled in without reading it back is what the row holds.
    stored = Order.objects.get(pk=order.pk)
    assert (order.status, order.worker, order.started_at, order.lease_expires_at) == (
        stored.status, stored.worker, stored.started_at, stored.lease_expires_at)
    assert type(order.status) is str and order.status == "running"
