"""Cluster-wide limits with real workers on PostgreSQL: what runs at once and what starts
per second, reconstructed from every attempt's start and end."""

from datetime import datetime

import pytest

from orders.models import Limit, LimitScope, Order, Status
from orders.services import OrderSpec, place_orders
from tests.conftest import wait_for
from tests.system.test_failover import FAST

pytestmark = [pytest.mark.postgres, pytest.mark.system]


def attempts(**filters) -> list[tuple[datetime, datetime, str]]:
    """(claimed, ended, concurrency key) of every attempt of the orders ``filters`` select."""
    spans = []
    for history, key in Order.objects.filter(**filters).values_list("history", "concurrency_key"):
        spans += [(datetime.fromisoformat(entry["claimed"]), datetime.fromisoformat(entry["ended"]), key)
                  for entry in history]
    return spans


def most_at_once(spans) -> int:
    """The most spans open at one moment (an end and a start at the same instant do not overlap)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda e: (e[0], e[1]))
    open_now = peak = 0
    for _, change in edges:
        open_now += change
        peak = max(peak, open_now)
    return peak


def all_done(count: int):
    return lambda: Order.objects.filter(status=Status.DONE).count() == count


def test_two_at_once_across_four_workers_and_one_per_customer(processes):
    Limit.objects.create(scope=LimitScope.KIND, name="bake", max_running=2)
    Limit.objects.create(scope=LimitScope.KIND, name="deliver", max_running_per_key=1)
    place_orders([OrderSpec("bake", {"seconds": 0.05}) for _ in range(200)])
    place_orders([OrderSpec("deliver", {"seconds": 0.05}, concurrency_key=f"customer-{n % 5}") for n in range(100)])
    processes.notifier("N1", **FAST)
    for n in range(4):
        processes.worker(f"S{n}", concurrency=4, **FAST)

    samples = []
    wait_for(lambda: samples.append(Order.objects.filter(kind="bake", status=Status.RUNNING).count())
             or all_done(300)(), timeout=120, interval=0.02, message="all 300 orders done")

    assert max(samples) <= 2 and most_at_once([(s, e) for s, e, _ in attempts(kind="bake")]) <= 2
    by_customer = {}
    for start, end, key in attempts(kind="deliver"):
        by_customer.setdefault(key, []).append((start, end))
    assert len(by_customer) == 5 and all(most_at_once(spans) == 1 for spans in by_customer.values())
    assert most_at_once([(s, e) for s, e, _ in attempts(kind="deliver")]) > 1, "different customers ran side by side"


def test_twenty_starts_a_second_across_three_workers(processes):
    Limit.objects.create(scope=LimitScope.KIND, name="noop", max_starts=20, per_seconds=1)
    place_orders([OrderSpec("noop") for _ in range(200)])
    processes.notifier("N1", **FAST)
    for n in range(3):
        processes.worker(f"S{n}", concurrency=4, prefetch=0, **FAST)

    wait_for(all_done(200), timeout=60, interval=0.2, message="all 200 orders done")

    starts = sorted(start for start, _, _ in attempts(kind="noop"))
    busiest = max(sum(1 for other in starts[i:] if (other - start).total_seconds() < 1) for i, start in enumerate(starts))
    assert busiest <= 20
    assert (starts[-1] - starts[0]).total_seconds() > 8, "200 orders at 20 a second take about 10 s"
