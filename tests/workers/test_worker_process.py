"""A real `manage.py runworker` process: order of service, retries, delay, TTL, wake-up
and graceful stop."""

import signal
import time

import pytest

from orders.models import Order, Status
from orders.services import expire_overdue, place_order
from tests.claims import claim
from tests.conftest import database_url, run_python, wait_for
from workers.models import Event, EventKind, Worker, WorkerStatus

FAST = {"PIZZAQ_POLL_INTERVAL": "0.2", "PIZZAQ_HEARTBEAT_INTERVAL": "0.5"}


def all_finished(count):
    return lambda: Order.objects.finished().count() == count


def worker_registered(name):
    return lambda: Worker.objects.filter(name=name, status=WorkerStatus.ALIVE).exists()


def test_one_worker_serves_highest_priority_first_and_fifo_within_a_priority(processes):
    priorities = [0, 5, 0, -10, 5, 100, 0]
    placed = [place_order("bake", {"seconds": 0.05, "n": n}, priority=p) for n, p in enumerate(priorities)]

    processes.worker("S0", concurrency=1, **FAST)
    wait_for(all_finished(len(placed)), message="every order done")

    # One thread: each order finished before the next began. (started_at is when an order
    # was claimed, and orders claimed together share it.)
    served = [o.payload["n"] for o in Order.objects.order_by("finished_at")]
    assert served == [5, 1, 4, 0, 2, 6, 3]
    assert set(Order.objects.values_list("status", flat=True)) == {Status.DONE}


def test_a_failing_handler_is_retried_then_dead_lettered_with_its_error(processes):
    order = place_order("flaky", {"failure_rate": 1}, max_attempts=3)

    processes.worker("S0", concurrency=1, PIZZAQ_RETRY_BASE_DELAY="0.2", **FAST)
    wait_for(all_finished(1), message="the flaky order to be dead-lettered")

    order.refresh_from_db()
    assert order.status == Status.DEAD and order.attempt == 3
    assert "RuntimeError: the oven flickered" in order.last_error
    assert [h["outcome"] for h in order.history] == ["failed"] * 3


def test_delay_is_honoured_and_an_order_past_its_ttl_never_runs(processes):
    # No claiming ahead: the doomed order stays queued while the bake runs (an order
    # claimed ahead expires on the worker instead: test_prefetch).
    processes.worker("S0", concurrency=1, prefetch=0, **FAST)
    wait_for(worker_registered("S0"))
    place_order("bake", {"seconds": 2})
    doomed = place_order("noop", ttl=0.5)
    delayed = place_order("noop", delay=1.5)

    wait_for(lambda: Order.objects.filter(pk=delayed.pk, status=Status.DONE).exists(), message="the delayed order")

    delayed.refresh_from_db()
    assert (delayed.started_at - delayed.created_at).total_seconds() >= 1.5
    doomed.refresh_from_db()
    assert doomed.status == Status.QUEUED and doomed.attempt == 0
    assert expire_overdue() == 1
    doomed.refresh_from_db()
    assert doomed.status == Status.EXPIRED and doomed.started_at is None


@pytest.mark.postgres
def test_an_idle_worker_wakes_on_notify_without_waiting_for_its_poll(processes):
    wakes_on_notify(processes)


@pytest.mark.postgres
def test_behind_pgbouncer_a_worker_listens_around_it_on_the_direct_url(processes, pgbouncer):
    wakes_on_notify(processes, DATABASE_LISTEN_URL=database_url(), **pgbouncer.env)


def wakes_on_notify(processes, **env):
    processes.worker("S0", concurrency=1, PIZZAQ_POLL_INTERVAL="60", **env)
    wait_for(worker_registered("S0"))
    time.sleep(0.5)  # let it settle into its long sleep

    order = place_order("noop")

    wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.DONE).exists(), timeout=10,
             message="the order to be done long before the 60 s poll")


def test_sigterm_lets_a_short_order_finish_then_deregisters(processes):
    worker = processes.worker("S0", concurrency=1, **FAST)
    wait_for(worker_registered("S0"))
    order = place_order("bake", {"seconds": 1.5})
    wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.RUNNING).exists())

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(15) == 0
    order.refresh_from_db()
    assert order.status == Status.DONE
    assert Worker.objects.get(name="S0").status == WorkerStatus.LEFT


def test_sigterm_releases_an_order_that_outlives_the_grace_period(processes):
    worker = processes.worker("S0", concurrency=1, PIZZAQ_SHUTDOWN_GRACE="1", **FAST)
    wait_for(worker_registered("S0"))
    order = place_order("bake", {"seconds": 60}, max_attempts=1)
    wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.RUNNING).exists())

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(15) == 0
    assert not Order.objects.filter(status=Status.RUNNING).exists()
    order.refresh_from_db()
    assert order.status == Status.QUEUED and order.history[-1]["outcome"] == "requeued"
    assert Worker.objects.get(name="S0").status == WorkerStatus.LEFT
    # Released, not failed: its single try is still there for the next shop.
    [again] = claim("S1", 1)
    assert again.pk == order.pk


def test_a_second_name_clash_is_refused_with_a_clear_message(processes):
    processes.worker("S0", concurrency=1, **FAST)
    wait_for(worker_registered("S0"))

    clash = processes.worker("S0", concurrency=1, **FAST)

    assert clash.wait(30) != 0
    assert "worker S0 is already running" in open(clash.log_path).read()


def test_a_worker_finishing_orders_in_its_grace_period_is_not_taken_for_dead(processes):
    fast_death = {**FAST, "PIZZAQ_WORKER_TIMEOUT": "2"}
    processes.notifier("N1", **fast_death)
    worker = processes.worker("S0", concurrency=1, PIZZAQ_SHUTDOWN_GRACE="20", **fast_death)
    wait_for(worker_registered("S0"))
    order = place_order("bake", {"seconds": 5})
    wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.RUNNING).exists())

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(30) == 0
    order.refresh_from_db()
    assert order.status == Status.DONE and order.attempt == 1
    assert Worker.objects.get(name="S0").status == WorkerStatus.LEFT
    assert not Event.objects.filter(kind=EventKind.DIED).exists()


@pytest.mark.postgres
def test_a_worker_connection_has_a_statement_timeout(processes):
    processes.worker("S0", concurrency=1, DATABASE_STATEMENT_TIMEOUT="42", **FAST)
    order = place_order("show_setting", {"name": "statement_timeout"})

    wait_for(all_finished(1), message="the order to be done")

    assert Order.objects.get(pk=order.pk).result == "42s"
    assert run_python("import django; django.setup()\nfrom django.db import connection\n"
                      "print(connection.cursor().connection.execute('SHOW statement_timeout').fetchone()[0])",
                      DATABASE_STATEMENT_TIMEOUT="42").strip() == "0", "one-off commands may run long"
