"""The recorder, in this process: results handed in together go out in one fenced batch,
and a batch the database refuses to take is kept and written once it is back."""

import threading
import time

import pytest
from django.db import OperationalError
from django.utils import timezone

from orders import services
from orders.models import Order, Status
from orders.services import OrderSpec, place_orders
from tests.claims import claim
from workers.contact import DatabaseContact
from workers.incarnation import Run
from workers.recorder import Recorder

pytestmark = pytest.mark.django_db(transaction=True)


class Settled(dict):
    """What the recorder told about each run: its Outcome, or the error that stopped it."""

    def __call__(self, run, outcome=None, error=None):
        self[run.order.pk] = outcome if error is None else error


def hand_in(recorder: Recorder, orders) -> None:
    for order in orders:
        recorder.record(Run(order, started=time.monotonic(), began=timezone.now()), {"made": str(order.pk)})


def test_results_handed_in_together_go_out_in_one_batch_each_fenced_by_its_own_token(monkeypatch):
    place_orders([OrderSpec("noop") for _ in range(5)])
    orders = claim("S0", 5)
    stale = orders[0]
    Order.objects.filter(pk=stale.pk).update(attempt=stale.attempt + 1)  # another run took it over
    batches = []
    real = services.complete_many
    monkeypatch.setattr(services, "complete_many", lambda worker, results: batches.append(len(results))
                        or real(worker, results))
    settled = Settled()
    recorder = Recorder("S0", settled, DatabaseContact("S0"), threading.Event())

    hand_in(recorder, orders)
    recorder.stop()
    recorder.run()

    assert batches == [5]
    assert [bool(settled[order.pk]) for order in orders] == [False, True, True, True, True]
    assert "fenced off" in settled[stale.pk].message
    assert Order.objects.filter(status=Status.DONE).count() == 4


def test_a_batch_the_database_would_not_take_is_written_once_it_is_back(monkeypatch):
    place_orders([OrderSpec("noop") for _ in range(3)])
    orders = claim("S0", 3)
    real, failures = services.complete_many, iter(range(3))

    def away_for_a_while(worker, results):
        if next(failures, None) is not None:
            raise OperationalError("connection refused")
        return real(worker, results)

    monkeypatch.setattr(services, "complete_many", away_for_a_while)
    settled = Settled()
    recorder = Recorder("S0", settled, DatabaseContact("S0"), threading.Event())

    hand_in(recorder, orders)
    recorder.stop()
    recorder.run()

    assert all(settled[order.pk] for order in orders), "written after three failed tries, not given up"
    assert Order.objects.filter(status=Status.DONE).count() == 3


def test_once_the_incarnation_is_over_unwritten_results_are_given_up(monkeypatch):
    place_orders([OrderSpec("noop")])
    orders = claim("S0", 1)
    monkeypatch.setattr(services, "complete_many", lambda worker, results: (_ for _ in ()).throw(
        OperationalError("connection refused")))
    over = threading.Event()
    settled = Settled()
    recorder = Recorder("S0", settled, DatabaseContact("S0"), over)
    hand_in(recorder, orders)
    recorder.stop()
    threading.Timer(0.3, over.set).start()

    recorder.run()

    assert "gave up recording results" in str(settled[orders[0].pk])
    assert Order.objects.get(pk=orders[0].pk).status == Status.RUNNING, "its lease will lapse; it runs again"
