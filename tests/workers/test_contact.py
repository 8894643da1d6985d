"""An outage is told in two log lines, however many calls fail during it."""

import logging

import pytest
from django.db import OperationalError

from workers import contact
from workers.contact import DatabaseContact, retry_delay

# A failure drops the thread's connection if it is broken: that looks at the database.
pytestmark = pytest.mark.django_db


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.WARNING, logger="pizzaq.contact")
    return lambda: [record.getMessage() for record in caplog.records]


def test_an_outage_is_one_line_going_and_one_coming_back(lines):
    tracker = DatabaseContact("S0")
    for _ in range(50):
        tracker.failed("claiming", OperationalError("connection refused\nmore detail"))
    tracker.reached()
    tracker.reached()

    [lost, back] = lines()
    assert lost.startswith("S0 lost the database (claiming: connection refused)") and "more detail" not in lost
    assert back.startswith("S0 reached the database again after")


def test_stale_connections_failing_right_after_the_return_are_not_a_new_outage(lines, monkeypatch):
    tracker = DatabaseContact("S0")
    tracker.failed("claiming", OperationalError("down"))
    tracker.reached()

    tracker.failed("recording results", OperationalError("server closed the connection"))
    tracker.reached()
    assert len(lines()) == 2

    # A new outage that goes on past the settling time is told, however soon it came.
    monkeypatch.setattr(contact, "SETTLE", 0.0)
    tracker.failed("heartbeating", OperationalError("down again"))
    tracker.reached()
    assert len(lines()) == 4 and "down again" in lines()[2]


def test_retries_back_off_to_a_cap():
    delays = [retry_delay(n) for n in range(1, 12)]
    assert delays == sorted(delays) and delays[0] < 0.1 and delays[-1] == contact.RETRY_CAP
