"""A worker holds a bounded number of orders, however slowly the database takes its results."""

import time

from orders import services
from orders.models import Order, Status
from orders.services import OrderSpec, place_orders
from tests.conftest import wait_for


def slowly(real, seconds: float):
    def write(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    return write


def test_results_the_database_takes_slowly_hold_claims_back_instead_of_piling_up(start_worker, monkeypatch):
    # Each batch of results takes a tenth of a second to write; no-op handlers return at once.
    monkeypatch.setattr(services, "complete_many", slowly(services.complete_many, 0.1))
    place_orders([OrderSpec("noop") for _ in range(100)])
    start_worker(concurrency=2)  # holds 2 orders to run (no prefetch)

    most_held = 0
    deadline = time.monotonic() + 60
    while Order.objects.exclude(status=Status.DONE).exists() and time.monotonic() < deadline:
        most_held = max(most_held, Order.objects.filter(status=Status.RUNNING).count())
        time.sleep(0.02)

    wait_for(lambda: not Order.objects.exclude(status=Status.DONE).exists(), message="every order done")
    # Twice its capacity at the most: the orders to run, and as many waiting to be recorded
    # (more than the capacity: a claim goes out while a batch is written).
    assert 2 < most_held <= 4, most_held
