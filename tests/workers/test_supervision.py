"""A worker run in this process: handlers that raise anything, side loops that die, and a
worker that was declared dead, all met without a person restarting anything."""

import itertools

import pytest
from django.db import OperationalError
from django.tasks import TaskResultStatus

from orders import services
from orders.claiming import Claim
from orders.models import Order, Status
from orders.services import OrderSpec, place_order, place_orders
from tests import tasks
from tests.conftest import wait_for
from tests.handlers import appended
from workers import membership
from workers.membership import force_fail
from workers.models import Event, EventKind, Worker, WorkerStatus


def fail_first(calls: int, real):
    """``real``, except that its first ``calls`` calls raise an error nobody foresaw."""
    count = itertools.count()

    def flaky(*args, **kwargs):
        if next(count) < calls:
            raise RuntimeError("a bug nobody foresaw")
        return real(*args, **kwargs)

    return flaky


def statuses(orders) -> list[str]:
    return list(Order.objects.filter(pk__in=[order.pk for order in orders]).values_list("status", flat=True))


def done_once(order_ids) -> bool:
    histories = Order.objects.filter(pk__in=order_ids).values_list("status", "history")
    return all(status == Status.DONE and [h["outcome"] for h in history].count("done") == 1
               for status, history in histories)


@pytest.mark.parametrize("raised", ["KeyboardInterrupt", "SystemExit", "OvenExploded"])
def test_a_handler_raising_any_base_exception_fails_its_attempt_and_the_worker_keeps_every_thread(
        start_worker, raised, tmp_path):
    order = place_order("raise", {"raise": raised}, max_attempts=2)
    start_worker(concurrency=2)

    wait_for(lambda: statuses([order]) == [Status.DEAD], message="the order to be dead-lettered")
    order.refresh_from_db()
    assert [h["outcome"] for h in order.history] == ["failed", "failed"]
    assert order.last_error.strip().endswith(f"{raised}: raised by the handler")

    # Both order threads are still there: two slow orders start side by side.
    path = tmp_path / "evidence"
    slow = place_orders([OrderSpec("append", {"path": str(path), "seconds": 2}) for _ in range(2)])
    wait_for(lambda: len(appended(path)) == 2, message="both slow orders to start")
    assert Status.DONE not in statuses(slow), "they started together, not one after the other"
    wait_for(lambda: statuses(slow) == [Status.DONE] * 2, message="both slow orders to be done")


def test_a_task_raising_keyboard_interrupt_is_failed_with_its_class_path(start_worker):
    result = tasks.interrupt.enqueue()
    start_worker()

    wait_for(lambda: result.refresh() or result.is_finished, message="the task to finish")

    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class_path == "builtins.KeyboardInterrupt"
    assert "This task raised KeyboardInterrupt" in error.traceback


def test_a_recorder_that_dies_is_restarted_and_writes_the_results_it_held(start_worker, monkeypatch, caplog):
    monkeypatch.setattr(services, "complete_many", fail_first(2, services.complete_many))
    orders = place_orders([OrderSpec("noop") for _ in range(20)])
    start_worker()

    wait_for(lambda: statuses(orders) == [Status.DONE] * 20, message="every order to be done")

    assert done_once([order.pk for order in orders])
    assert "S0-recorder died; restarting it" in caplog.text
    assert Worker.objects.get(name="S0").incarnation == 1


def test_a_heartbeat_loop_that_dies_is_restarted_and_the_worker_goes_on(start_worker, monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(membership, "heartbeat", fail_first(3, membership.heartbeat))
    held = place_order("append", {"path": str(tmp_path / "evidence"), "seconds": 1.5})
    start_worker()
    wait_for(lambda: caplog.text.count("S0-heartbeat died; restarting it") == 3, message="three deaths")
    beat = Worker.objects.get(name="S0").last_heartbeat

    wait_for(lambda: Worker.objects.get(name="S0").last_heartbeat > beat, message="heartbeats again")
    orders = place_orders([OrderSpec("noop") for _ in range(5)])
    wait_for(lambda: statuses([held, *orders]) == [Status.DONE] * 6, message="the held and later orders done")
    assert Worker.objects.get(name="S0").incarnation == 1


def test_a_part_that_keeps_dying_makes_the_worker_give_its_orders_back_and_rejoin(start_worker, monkeypatch):
    # The recorder dies more times in a row than a part may: the incarnation gives up.
    monkeypatch.setattr(services, "complete_many", fail_first(6, services.complete_many))
    orders = place_orders([OrderSpec("noop") for _ in range(4)])
    start_worker()

    wait_for(lambda: statuses(orders) == [Status.DONE] * 4, timeout=30, message="every order to be done")

    assert done_once([order.pk for order in orders]), "no order stayed running, none was done twice"
    left = Event.objects.get(kind=EventKind.LEFT, worker="S0")
    assert "broken" in left.message
    assert Worker.objects.get(name="S0").incarnation == 2


def test_a_force_failed_worker_moves_nothing_twice_and_rejoins_after_its_back_off(start_worker, tmp_path):
    start_worker("S0")
    wait_for(lambda: Worker.objects.filter(name="S0", status=WorkerStatus.ALIVE).exists(), message="S0 to join")

    assert force_fail("S0", "alice")

    wait_for(lambda: Worker.objects.filter(name="S0", status=WorkerStatus.ALIVE, incarnation=2).exists(),
             message="S0 to rejoin as incarnation 2")
    path = tmp_path / "evidence"
    later = place_order("append", {"path": str(path), "seconds": 0})
    wait_for(lambda: statuses([later]) == [Status.DONE], message="the new incarnation to make orders")
    assert appended(path) == [(str(later.pk), 1, __import__("os").getpid())]


def test_an_order_whose_handler_loses_the_database_goes_back_without_using_a_try(start_worker):
    order = place_order("lose_the_database_once", max_attempts=1)
    start_worker()

    wait_for(lambda: statuses([order]) == [Status.DONE], message="the order to be done on its second run")

    order.refresh_from_db()
    assert [h["outcome"] for h in order.history] == ["released", "done"]
    assert "the database went away under its handler" in order.history[0]["error"]


def test_a_claim_whose_answer_was_lost_gives_its_orders_back_at_once(start_worker, monkeypatch):
    real = Claim.__call__
    answers = itertools.count()

    def answer_lost_once(claim, limit):
        claimed = real(claim, limit)
        if claimed and next(answers) == 0:
            raise OperationalError("server closed the connection unexpectedly")  # it committed all the same
        return claimed

    monkeypatch.setattr(Claim, "__call__", answer_lost_once)
    order = place_order("noop", max_attempts=1)
    start_worker()

    # Long before its 30 s lease could lapse.
    wait_for(lambda: statuses([order]) == [Status.DONE], timeout=10, message="the order to be done")
    order.refresh_from_db()
    assert [h["outcome"] for h in order.history] == ["released", "done"] and order.attempt == 2
