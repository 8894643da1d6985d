"""A real worker claiming ahead (--prefetch): one claim serves several orders, orders
claimed ahead go back at once on shutdown, and one whose time-to-live runs out while it
waits for a thread never runs."""

import signal

from orders.models import Order, Status
from orders.services import OrderSpec, place_orders
from tests.claims import claim
from tests.conftest import wait_for
from tests.handlers import completions, create_completions_table
from workers.models import Worker, WorkerStatus

FAST = {"PIZZAQ_POLL_INTERVAL": "0.2", "PIZZAQ_HEARTBEAT_INTERVAL": "0.5"}


def running_on(name):
    return Order.objects.filter(status=Status.RUNNING, worker=name)


def worker_registered(name):
    return lambda: Worker.objects.filter(name=name, status=WorkerStatus.ALIVE).exists()


def test_a_worker_holds_concurrency_plus_prefetch_orders_and_runs_them_in_claim_order(processes):
    placed = place_orders([OrderSpec("bake", {"seconds": 0.6, "n": n}, priority=-n) for n in range(6)])

    processes.worker("S0", concurrency=1, prefetch=3, **FAST)

    # One thread, four orders held: the first three claims ahead wait for it.
    wait_for(lambda: running_on("S0").count() == 4, message="four orders held by S0")
    assert set(running_on("S0").values_list("payload__n", flat=True)) == {0, 1, 2, 3}
    wait_for(lambda: Order.objects.filter(status=Status.DONE).count() == len(placed), timeout=30,
             message="every order done")
    done = Order.objects.order_by("finished_at")
    assert [o.payload["n"] for o in done] == [0, 1, 2, 3, 4, 5]
    assert {(o.attempt, len(o.history)) for o in done} == {(1, 1)}


def test_sigterm_gives_back_orders_claimed_ahead_before_the_running_one_ends(processes):
    worker = processes.worker("S0", concurrency=1, prefetch=3, PIZZAQ_SHUTDOWN_GRACE="30", **FAST)
    wait_for(worker_registered("S0"))
    first, *ahead = place_orders([OrderSpec("bake", {"seconds": 4}, priority=10, max_attempts=1)]
                                 + [OrderSpec("bake", {"seconds": 0.1}, max_attempts=1) for _ in range(3)])
    wait_for(lambda: running_on("S0").count() == 4, message="four orders held by S0")

    worker.send_signal(signal.SIGTERM)

    wait_for(lambda: Order.objects.filter(status=Status.QUEUED).count() == 3, message="the three claimed ahead back")
    first.refresh_from_db()
    assert first.status == Status.RUNNING  # still in the oven: nothing waited for it
    for order in ahead:
        order.refresh_from_db()
        assert order.history[-1]["outcome"] == "released" and order.worker == ""
    assert worker.wait(30) == 0
    first.refresh_from_db()
    assert first.status == Status.DONE
    # Given back, not failed: their single try is still there for the next shop.
    assert {o.pk for o in claim("S1", 10)} == {o.pk for o in ahead}


def test_an_order_claimed_ahead_whose_ttl_runs_out_before_a_thread_is_free_never_runs(processes):
    create_completions_table()
    processes.worker("S0", concurrency=1, prefetch=1, **FAST)
    wait_for(worker_registered("S0"))

    _, doomed = place_orders([OrderSpec("bake", {"seconds": 2}, priority=10),
                              OrderSpec("record", {"seconds": 0}, ttl=1)])
    wait_for(lambda: running_on("S0").count() == 2, message="the doomed order claimed ahead")
    wait_for(lambda: Order.objects.filter(status=Status.DONE).count() == 1, message="the bake done")
    wait_for(lambda: Order.objects.filter(pk=doomed.pk, status=Status.EXPIRED).exists(),
             message="the doomed order expired")

    doomed.refresh_from_db()
    assert doomed.result is None and doomed.history[-1]["outcome"] == "expired"
    assert completions() == []  # its handler never ran
