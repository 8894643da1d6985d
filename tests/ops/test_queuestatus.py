"""manage.py queuestatus: the queue's state in the terminal."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from orders.services import OrderSpec, complete, place_orders
from tests.claims import claim
from workers import leadership
from workers.membership import force_fail, register

pytestmark = pytest.mark.django_db


def queuestatus(*args) -> str:
    out = StringIO()
    call_command("queuestatus", *args, stdout=out)
    return out.getvalue()


def cells(line: str) -> list[str]:
    """The cells of one table line (rich draws the header with heavy bars)."""
    return [cell.strip() for cell in re.split("[│┃]", line.strip())[1:-1]]


def row_of(output: str, first_cell: str) -> list[str]:
    return next(cells(line) for line in output.splitlines() if cells(line)[:1] == [first_cell])


def test_it_shows_the_counts_the_workers_and_the_events_of_a_seeded_queue(pizzaq_settings):
    pizzaq_settings(hostname="oven-a")
    register("S0", concurrency=2)
    pizzaq_settings(hostname="oven-b")
    register("S1", concurrency=3)
    register("S2")
    force_fail("S2", "alice")
    place_orders([OrderSpec("noop", priority=5) for _ in range(4)] + [OrderSpec("noop") for _ in range(2)])
    (order,) = claim("S0", 1)
    complete(order, "S0", order.attempt, None)
    leadership.hold_or_take("N1", 30)

    output = queuestatus()

    header = next(cells(line) for line in output.splitlines() if "queued by priority" in line)
    counts = dict(zip(header, next(cells(line) for line in output.splitlines() if "5: 3" in line)))
    assert counts == {"waiting": "0", "queued": "5", "running": "0", "done": "1", "dead": "0", "expired": "0",
                      "cancelled": "0", "queued by priority": "5: 3, 0: 2"}
    s0, s1, s2 = row_of(output, "S0"), row_of(output, "S1"), row_of(output, "S2")
    assert s0[:3] == ["S0", "alive", "oven-a"] and s0[4].endswith(" s") and s0[-1] == "1"
    assert s1[:3] == ["S1", "alive", "oven-b"]
    assert s2[:2] == ["S2", "dead"] and s2[4] == "-"
    assert "notifier leader: N1" in output
    assert re.search(r"force_failed.*S2 force-failed by alice", output)


def test_it_says_when_no_notifier_leads():
    output = queuestatus()

    assert "no notifier leader has ever been seen" in output
    assert "no workers have joined" in output


def test_it_refuses_a_watch_interval_of_zero():
    with pytest.raises(CommandError, match="--interval must be more than 0"):
        queuestatus("--watch", "--interval", "0")
