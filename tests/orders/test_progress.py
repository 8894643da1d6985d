"""Progress a handler reports: checked, fenced by the run's token, written at most once per
interval, shown in the one shape every reader gets, and dropped when the database is away."""

import asyncio
import logging

import psycopg
import pytest
from django.db import OperationalError, ProgrammingError, connection, transaction
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext

from orders import services
from orders.models import Order
from orders.notify import CHANGES_CHANNEL
from orders.presenting import order_record, order_summary
from orders.services import place_order
from tests.claims import claim
from workers.listener import listen_params

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def running(pizzaq_settings):
    """A bake order claimed by S0: the order its handler would get."""
    pizzaq_settings(progress_interval=0)
    place_order("bake")
    [order] = claim("S0", 1)
    return order


def stored(order) -> tuple:
    return Order.objects.values_list("progress_value", "progress_note").get(pk=order.pk)


def updates(queries: CaptureQueriesContext) -> int:
    return sum(query["sql"].startswith("UPDATE") for query in queries.captured_queries)


def test_a_report_is_stored_and_shown_to_every_reader(running):
    running.progress(0.4, "720p done")

    fresh = Order.objects.get(pk=running.pk)
    assert stored(running) == (0.4, "720p done")
    assert order_summary(fresh)["progress"] == {"value": 0.4, "note": "720p done", "at": fresh.progress_at}
    assert order_record(fresh)["progress"]["value"] == 0.4


def test_an_order_that_reported_nothing_shows_no_progress(running):
    assert order_summary(Order.objects.get(pk=running.pk))["progress"] is None


def test_an_earlier_runs_report_is_not_shown_as_the_next_runs(running):
    running.progress(0.9, "almost")
    services.requeue_running_on("S0", "the shop closed")

    [again] = claim("S1", 1)

    assert order_summary(Order.objects.get(pk=again.pk))["progress"] is None


@pytest.mark.parametrize("value", [-0.1, 1.01, float("nan"), float("inf"), "0.5", None, True])
def test_a_value_that_is_not_a_fraction_is_refused_and_nothing_is_written(running, value):
    with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
        running.progress(value)

    assert stored(running) == (None, "")


def test_a_note_that_is_not_text_is_refused_and_a_long_one_is_cut(running):
    with pytest.raises(TypeError, match="note must be a string"):
        running.progress(0.5, 42)

    running.progress(1, "x" * 500)

    assert stored(running) == (1.0, "x" * 200)


def test_a_run_that_lost_its_order_writes_nothing(running):
    Order.objects.filter(pk=running.pk).update(attempt=running.attempt + 1)  # another run took it over

    running.progress(0.5, "zombie")

    assert stored(running) == (None, "")


def test_a_cancelled_run_writes_nothing(running):
    services.cancel(running.pk)

    running.progress(0.5, "still going")

    assert stored(running) == (None, "")


def test_reports_within_the_interval_are_held_and_the_latest_goes_out_after_it(running, pizzaq_settings):
    pizzaq_settings(progress_interval=3600)
    with CaptureQueriesContext(connection) as queries:
        for step in range(1, 51):
            running.progress(step / 100, f"step {step}")
        first = stored(running)
        pizzaq_settings(progress_interval=0)  # the interval is over
        running.progress_reporter.flush()

    assert first == (0.01, "step 1")
    assert stored(running) == (0.5, "step 50")
    assert updates(queries) == 2


def test_a_report_inside_a_transaction_waits_for_a_flush_outside_it(running):
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        running.progress(0.3, "in a transaction")

    assert updates(queries) == 0
    running.progress_reporter.flush()  # as the worker's heartbeat does
    assert stored(running) == (0.3, "in a transaction")


def test_a_report_from_an_async_task_waits_for_a_flush_outside_its_event_loop(running):
    async def task_body():
        running.progress(0.6, "async")  # Django allows no synchronous query in here

    asyncio.run(task_body())

    assert stored(running) == (None, "")
    running.progress_reporter.flush()
    assert stored(running) == (0.6, "async")


def test_a_note_with_characters_the_database_cannot_hold_is_kept_readable(running):
    running.progress(0.5, "cat\x00.mp4 \udc80done")

    assert stored(running) == (0.5, "cat.mp4 ?done")


def test_a_report_the_database_does_not_take_is_logged_and_dropped(running, monkeypatch, caplog):
    def away(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    with monkeypatch.context() as patched:
        patched.setattr(QuerySet, "update", away)
        with caplog.at_level(logging.WARNING, logger="pizzaq.orders"):
            running.progress(0.2, "lost")

    assert "not written, the database is away" in caplog.text
    assert stored(running) == (None, "")
    running.progress(0.6, "back")
    assert stored(running) == (0.6, "back")


def test_a_programming_error_in_a_report_is_raised(running, monkeypatch):
    def broken(*args, **kwargs):
        raise ProgrammingError("column progress_value does not exist")

    monkeypatch.setattr(QuerySet, "update", broken)

    with pytest.raises(ProgrammingError):
        running.progress(0.2)


@pytest.mark.postgres
def test_a_written_report_wakes_dashboards_once_it_committed(running):
    with psycopg.connect(**listen_params(), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANGES_CHANNEL}")

        running.progress(0.7, "nearly")

        heard = [note.channel for note in listener.notifies(timeout=5, stop_after=1)]
    assert heard == [CHANGES_CHANNEL]
