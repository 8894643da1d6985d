"""Workflows with real workers on PostgreSQL, through a kill -9: fan-in callbacks run once
and only after every child is done; ordered orders never overlap within a key and start
in the order they were placed."""

import os
import random
import signal
from datetime import datetime

import pytest

from orders.models import Order, Status
from orders.services import OrderSpec, place_orders
from tests.conftest import wait_for
from tests.system.test_failover import FAST, alive

pytestmark = [pytest.mark.postgres, pytest.mark.system]


def spans(order: Order) -> list[tuple[datetime, datetime, str]]:
    """(began, ended, outcome) of each of the order's attempts, from its history: began is
    when its handler started (the claim's own time is read before the claim is sent, so
    it may precede the commit that released the order)."""
    return [(datetime.fromisoformat(entry.get("started") or entry["claimed"]), datetime.fromisoformat(entry["ended"]),
             entry["outcome"]) for entry in order.history]


def drain_with_a_kill_9(processes, total: int, *, kill_after) -> str:
    """Three workers drain ``total`` orders; one of them is killed -9 once ``kill_after()``
    says so, and replaced. The victim's name."""
    processes.notifier("N1", **FAST)
    live = {name: processes.worker(name, concurrency=2, **FAST) for name in ("S0", "S1", "S2")}
    wait_for(alive(*live), message="three workers joined")
    wait_for(kill_after, timeout=60, interval=0.05, message="the drain under way")
    victim = random.Random(16).choice(sorted(live))
    os.kill(live.pop(victim).pid, signal.SIGKILL)
    processes.worker("S3", concurrency=2, **FAST)
    wait_for(lambda: Order.objects.filter(status=Status.DONE).count() == total, timeout=180, interval=0.5,
             message=f"all {total} orders done")
    return victim


def test_fifty_uploads_each_publish_once_after_its_three_transcodes_through_a_kill_9(processes):
    place_orders([OrderSpec("upload", {"video": f"video-{n}.mp4", "seconds": 0.2}) for n in range(50)])

    victim = drain_with_a_kill_9(
        processes, 50 * 5, kill_after=lambda: Order.objects.filter(kind="transcode", status=Status.DONE).count() >= 40)

    assert Order.objects.filter(history__contains=[{"worker": victim}]).exists(), "the victim had taken part"
    publishes = list(Order.objects.filter(kind="publish"))
    assert len(publishes) == 50
    transcodes = {}
    for transcode in Order.objects.filter(kind="transcode"):
        transcodes.setdefault(transcode.payload["video"], []).append(transcode)
    for publish in publishes:
        children = transcodes[publish.payload["video"]]
        assert len(children) == 3 and all(child.status == Status.DONE for child in children)
        attempts = spans(publish)
        assert [outcome for _, _, outcome in attempts].count("done") == 1, "published exactly once"
        last_child_done = max(child.finished_at for child in children)
        assert all(claimed >= last_child_done for claimed, _, _ in attempts), "never before its transcodes"
        assert publish.result["resolutions"] == ["1080p", "144p", "720p"]


def test_twenty_keys_of_25_ordered_orders_never_overlap_and_start_in_placement_order_through_a_kill_9(processes):
    durations = random.Random(20)
    specs = [OrderSpec("step", {"n": n, "seconds": durations.uniform(0, 0.03), "fail_first": n % 7 == 3},
                       routing_key=f"customer-{key}", max_attempts=3)
             for n in range(25) for key in range(20)]
    place_orders(specs[:250])
    placed_later = specs[250:]

    def half_done_and_placed_the_rest():
        if placed_later and Order.objects.filter(status=Status.DONE).count() >= 60:
            place_orders(placed_later)  # a second call, while the first ones run
            placed_later.clear()
        return not placed_later and Order.objects.filter(status=Status.DONE).count() >= 200

    drain_with_a_kill_9(processes, 500, kill_after=half_done_and_placed_the_rest)

    by_key = {}
    for order in Order.objects.filter(kind="step"):
        by_key.setdefault(order.routing_key, []).append(order)
    assert len(by_key) == 20
    retried = 0
    for orders in by_key.values():
        orders.sort(key=lambda order: order.payload["n"])
        attempts = [(claimed, ended, order.payload["n"]) for order in orders for claimed, ended, _ in spans(order)]
        retried += len(attempts) - len(orders)
        attempts.sort()
        for (_, ended, n), (claimed, _, next_n) in zip(attempts, attempts[1:]):
            assert claimed >= ended, "two orders of one key ran at once"
            assert next_n >= n, "a later order started before an earlier one"
        assert [n for _, _, n in attempts] == sorted(n for _, _, n in attempts)
    assert retried >= 20 * 4, "the failing first tries (steps 3, 10, 17 and 24 of each key) were retried"
