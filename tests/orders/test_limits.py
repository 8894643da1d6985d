"""Cluster-wide limits in the claim: how many of a kind or queue run at once, per
concurrency key, and how many start per period."""

import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from orders.limits import sync_from_settings
from orders.models import Limit, LimitScope, Order, Status
from orders.services import OrderSpec, complete, place_orders, requeue_running_on
from tests.claims import claim

pytestmark = pytest.mark.django_db


def limit(**fields) -> Limit:
    scope = LimitScope.KIND if "kind" in fields else LimitScope.QUEUE
    return Limit.objects.create(scope=scope, name=fields.pop(scope), **fields)


def running(**filters) -> int:
    return Order.objects.filter(status=Status.RUNNING, **filters).count()


def test_a_kind_limited_to_two_runs_two_at_a_time_and_other_kinds_are_not_held_back():
    limit(kind="deliver", max_running=2)
    place_orders([OrderSpec("deliver") for _ in range(6)] + [OrderSpec("bake") for _ in range(4)])

    first = claim("S0", 100)

    assert sorted(o.kind for o in first) == ["bake"] * 4 + ["deliver"] * 2
    assert claim("S1", 100) == []
    done = next(o for o in first if o.kind == "deliver")
    complete(done, "S0", done.attempt, "sent")
    assert [o.kind for o in claim("S1", 100)] == ["deliver"]
    assert running(kind="deliver") == 2


def test_a_queue_limit_counts_every_kind_in_the_queue():
    limit(queue="reports", max_running=3)
    place_orders([OrderSpec(kind, queue="reports") for kind in ("bake", "noop") for _ in range(5)])

    assert len(claim("S0", 100)) == 3
    assert claim("S1", 100) == []


def test_per_key_at_most_one_runs_for_each_customer():
    limit(kind="deliver", max_running_per_key=1)
    place_orders([OrderSpec("deliver", concurrency_key=customer) for customer in ("ann", "bob") for _ in range(3)]
                 + [OrderSpec("deliver") for _ in range(2)])  # no key: not limited per key

    taken = claim("S0", 100)

    assert sorted(o.concurrency_key for o in taken) == ["", "", "ann", "bob"]
    assert claim("S1", 100) == []


def test_over_the_rate_orders_wait_without_using_a_try_and_start_in_the_next_period():
    limit(kind="deliver", max_starts=5, per_seconds=1)
    place_orders([OrderSpec("deliver") for _ in range(12)])

    assert len(claim("S0", 100)) == 5
    assert claim("S0", 100) == []
    assert set(Order.objects.filter(status=Status.QUEUED).values_list("attempt", flat=True)) == {0}
    time.sleep(1.05)
    assert len(claim("S1", 100)) == 5


def test_the_orders_of_a_dead_worker_stop_counting_once_they_are_requeued():
    limit(kind="deliver", max_running=2)
    place_orders([OrderSpec("deliver") for _ in range(4)])
    assert len(claim("S0", 100)) == 2

    requeue_running_on("S0", "S0 died")

    assert len(claim("S1", 100)) == 2 and running(worker="S0") == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claimers_racing_on_four_threads_never_pass_the_limit_together():
    limit(kind="deliver", max_running=3)
    place_orders([OrderSpec("deliver") for _ in range(40)])
    start, seen = threading.Barrier(4), []

    def worker(name):
        start.wait()
        for _ in range(30):
            for order in claim(name, 4):
                seen.append(running(kind="deliver"))
                complete(order, name, order.attempt, "sent")
        connection.close()

    threads = [threading.Thread(target=worker, args=(f"S{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen and max(seen) <= 3
    assert Order.objects.filter(status=Status.DONE).count() == 40


def test_pizzaq_limits_become_rows_and_leave_when_the_settings_drop_them(settings):
    limit(kind="bake", max_running=9)  # one made in the admin stays
    settings.PIZZAQ_LIMITS = [{"kind": "deliver", "max_running": 2}, {"queue": "reports", "max_starts": 10, "per_seconds": 60}]
    sync_from_settings()
    settings.PIZZAQ_LIMITS = [{"kind": "deliver", "max_running": 4}]
    sync_from_settings()

    rows = {(row.scope, row.name): (row.max_running, row.from_settings) for row in Limit.objects.all()}
    assert rows == {("kind", "bake"): (9, False), ("kind", "deliver"): (4, True)}


@pytest.mark.parametrize("entry", [
    {"max_running": 2}, {"kind": "a", "queue": "b"}, {"kind": "a", "max_running": 0}, {"kind": "a", "max_running": 1.5},
    {"kind": "a", "max_starts": 5}, {"kind": "a", "speed": 3}, "kind=a",
])
def test_a_wrong_pizzaq_limits_entry_stops_every_command_with_a_clear_error(settings, entry):
    settings.PIZZAQ_LIMITS = [entry]

    with pytest.raises(SystemCheckError, match="PIZZAQ_LIMITS entry"):
        call_command("check")
