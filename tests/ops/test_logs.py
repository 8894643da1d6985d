"""Structured logs: one line per event with worker, order, attempt and bucket fields, as
JSON when PIZZAQ_LOG_FORMAT=json."""

import json
import logging

import pytest

from orders.models import Order, Status
from orders.services import place_order
from orders.logformat import JsonFormatter, LineFormatter, order_fields
from tests.conftest import wait_for

FAST = {"PIZZAQ_POLL_INTERVAL": "0.2", "PIZZAQ_HEARTBEAT_INTERVAL": "0.5"}


def record_about(order, message="S1 claimed it") -> logging.LogRecord:
    return logging.makeLogRecord({"name": "pizzaq.worker", "levelname": "INFO", "msg": message,
                                  **order_fields("S1", order)})


@pytest.mark.django_db
def test_the_line_format_ends_with_the_fields_as_key_value_pairs():
    order = place_order("noop")

    line = LineFormatter("%(levelname)s %(message)s").format(record_about(order))

    assert line == f"INFO S1 claimed it worker=S1 order={order.pk} kind=noop attempt=0 bucket={order.bucket}"


def test_the_line_format_shows_each_lines_time_as_loggings_own_formatter_does():
    ours, loggings = LineFormatter("%(asctime)s %(message)s"), logging.Formatter("%(asctime)s %(message)s")
    # Lines within one second and across seconds, in and out of order.
    for created in (1_796_000_000.001, 1_796_000_000.999, 1_796_000_001.5, 1_796_000_000.25, 1_796_086_399.0):
        record = logging.makeLogRecord({"msg": "m", "created": created, "msecs": (created - int(created)) * 1000})
        assert ours.format(record) == loggings.format(record)
    assert ours.formatTime(record, "%H:%M") == loggings.formatTime(record, "%H:%M")


@pytest.mark.django_db
def test_the_json_format_is_one_object_per_line():
    order = place_order("noop")

    entry = json.loads(JsonFormatter().format(record_about(order, "two\nlines")))

    assert entry["message"] == "two\nlines" and entry["level"] == "INFO" and entry["logger"] == "pizzaq.worker"
    fields = (entry["worker"], entry["order"], entry["attempt"], entry["bucket"])
    assert fields == ("S1", str(order.pk), 0, order.bucket)


@pytest.mark.system
def test_a_worker_logs_json_lines_with_its_order_fields_its_claim_at_debug(processes):
    order = place_order("noop")

    worker = processes.worker("S1", concurrency=1, PIZZAQ_LOG_FORMAT="json", PIZZAQ_LOG_LEVEL="DEBUG", **FAST)
    wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.DONE).exists(), message="the order done")
    wait_for(lambda: f"order {order.pk} done" in open(worker.log_path).read(), message="the outcome logged")

    entries = [json.loads(line) for line in open(worker.log_path).read().splitlines()]
    about_order = [entry for entry in entries if entry.get("order") == str(order.pk)]
    assert [entry["message"].split(" (")[0] for entry in about_order] == [
        f"S1 claimed order {order.pk}", f"S1: order {order.pk} done"]
    assert all((entry["worker"], entry["attempt"], entry["bucket"]) == ("S1", 1, order.bucket) for entry in about_order)
    assert "elapsed" in about_order[1]
    assert any(entry["message"].startswith("S1 joined") for entry in entries), "other events are JSON too"


@pytest.mark.system
def test_at_the_default_level_a_run_is_one_line_when_it_ends(processes):
    order = place_order("noop")

    worker = processes.worker("S1", concurrency=1, **FAST)
    wait_for(lambda: f"order {order.pk} done" in open(worker.log_path).read(), message="the outcome logged")

    about_order = [line for line in open(worker.log_path).read().splitlines() if str(order.pk) in line]
    assert len(about_order) == 1
    assert f"worker=S1 order={order.pk} kind=noop attempt=1 bucket={order.bucket}" in about_order[0]
