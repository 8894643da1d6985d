"""GET /metrics: Prometheus text that prometheus-client parses, counters that move with
the queue and never go down, and who may read it."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orders.models import Order, Status
from orders.services import OrderSpec, complete, fail, place_order, place_orders, prune_finished
from tests.claims import claim
from tests.ops.helpers import parse_metrics, sample
from workers import leadership
from workers.membership import force_fail, register
from workers.models import Bucket

pytestmark = pytest.mark.django_db


def scrape(client, **extra) -> dict:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return parse_metrics(response.content.decode())


def run_to_completion(kind: str) -> Order:
    place_order(kind)
    (claimed,) = claim("S9", 1)
    assert complete(claimed, "S9", claimed.attempt, {"ok": True})
    return claimed


def test_placed_done_and_failed_counters_move_with_the_orders(client):
    before = scrape(client)
    place_orders([OrderSpec("noop", priority=5) for _ in range(3)])
    placed = scrape(client)
    assert sample(before, "pizzaq_orders_placed_total", kind="noop") == 0
    assert sample(placed, "pizzaq_orders_placed_total", kind="noop") == 3
    assert sample(placed, "pizzaq_queue_depth", priority="5") == 3
    assert sample(placed, "pizzaq_orders", status="queued", kind="noop") == 3

    (order,) = claim("S9", 1)
    assert complete(order, "S9", order.attempt, None)
    flaky = place_order("flaky", max_attempts=1, priority=10)
    (flaky,) = claim("S9", 1)
    assert fail(flaky, "S9", flaky.attempt, "RuntimeError: the oven flickered")
    after = scrape(client)

    assert sample(after, "pizzaq_orders_done_total", kind="noop") == 1
    assert sample(after, "pizzaq_order_failures_total", kind="flaky", outcome="failed") == 1
    assert sample(after, "pizzaq_orders", status="dead", kind="flaky") == 1
    assert sample(after, "pizzaq_queue_depth", priority="5") == 2
    assert sample(after, "pizzaq_order_run_seconds_count", kind="noop") == 1
    assert sample(after, "pizzaq_order_start_latency_seconds_count", kind="noop") == 1
    assert sample(after, "pizzaq_order_run_seconds_bucket", kind="noop", le="+Inf") == 1


def test_orders_moved_off_a_dead_worker_are_counted(client):
    register("S0"), register("S1")
    s1_buckets = set(Bucket.objects.filter(owner="S1").values_list("number", flat=True))
    place_orders([OrderSpec("noop", routing_key=f"customer-{n}") for n in range(200)])
    following = Order.objects.filter(status=Status.QUEUED, bucket__in=s1_buckets).count()
    assert following > 0
    before = scrape(client)

    assert force_fail("S1", "alice")
    after = scrape(client)

    assert sample(before, "pizzaq_orders_moved_total", reason="force_failed", was="queued") == 0
    assert sample(after, "pizzaq_orders_moved_total", reason="force_failed", was="queued") == following
    assert sample(after, "pizzaq_worker_deaths_total", reason="force_failed") == 1
    assert sample(after, "pizzaq_workers", status="dead") == 1


def test_counters_and_histograms_keep_pruned_orders(client):
    run_to_completion("noop")
    flaky = place_order("flaky", max_attempts=1)
    (flaky,) = claim("S9", 1)
    fail(flaky, "S9", flaky.attempt, "RuntimeError: boom")
    before = scrape(client)

    assert prune_finished(older_than=0) == 2
    after = scrape(client)

    assert Order.objects.count() == 0
    assert sample(after, "pizzaq_orders", status="done", kind="noop") is None
    for name, labels in [
        ("pizzaq_orders_placed_total", {"kind": "noop"}),
        ("pizzaq_orders_placed_total", {"kind": "flaky"}),
        ("pizzaq_orders_done_total", {"kind": "noop"}),
        ("pizzaq_order_failures_total", {"kind": "flaky", "outcome": "failed"}),
        ("pizzaq_order_run_seconds_count", {"kind": "noop"}),
        ("pizzaq_order_run_seconds_bucket", {"kind": "noop", "le": "1.0"}),
        ("pizzaq_order_start_latency_seconds_sum", {"kind": "noop"}),
    ]:
        assert sample(after, name, **labels) == sample(before, name, **labels) > 0, name

    run_to_completion("noop")
    assert sample(scrape(client), "pizzaq_orders_done_total", kind="noop") == 2


def test_metric_types_are_what_prometheus_expects(client):
    run_to_completion("noop")
    types = {family.name: family.type for family in
             text_string_to_metric_families(client.get("/metrics").content.decode())}

    assert types["pizzaq_orders_placed"] == types["pizzaq_orders_moved"] == "counter"
    assert types["pizzaq_order_run_seconds"] == types["pizzaq_order_start_latency_seconds"] == "histogram"
    assert types["pizzaq_orders"] == types["pizzaq_worker_heartbeat_age_seconds"] == "gauge"


def test_workers_heartbeats_and_the_notifier_leader_are_shown(client, pizzaq_settings):
    pizzaq_settings(hostname="oven-a")
    register("S0")
    leaderless = scrape(client)
    leadership.hold_or_take("N1", 30)
    led = scrape(client)

    assert sample(leaderless, "pizzaq_notifier_has_leader") == 0
    assert sample(led, "pizzaq_notifier_has_leader") == 1
    assert sample(led, "pizzaq_notifier_leader", notifier="N1") == 1
    assert sample(led, "pizzaq_workers", status="alive") == 1
    assert 0 <= sample(led, "pizzaq_worker_heartbeat_age_seconds", worker="S0", host="oven-a") < 60


def test_other_networks_need_the_token(client, monkeypatch):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics", **outside).status_code == 403

    monkeypatch.setenv("PIZZAQ_METRICS_TOKEN", "s3cret")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret", **outside).status_code == 200

    monkeypatch.setenv("PIZZAQ_METRICS_NETWORKS", "203.0.113.0/24")
    assert client.get("/metrics", **outside).status_code == 200
    assert client.get("/metrics").status_code == 403, "loopback is no longer listed"
