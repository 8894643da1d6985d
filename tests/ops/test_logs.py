"""Structured logs: one line per event with worker, order, attempt and bucket fields, as
JSON when PIZZAQ_LOG_FORMAT=json."""

import io
import json
import logging

import pytest

from orders.models import Order, Status
from orders.services import place_order
from orders.logformat import ConsoleHandler, JsonFormatter, LineFormatter, order_fields
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


def console(flush_after: float) -> tuple[logging.Logger, io.StringIO, ConsoleHandler]:
    stream = io.StringIO()
    handler = ConsoleHandler(stream, flush_after=flush_after)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"tests.console.{id(handler)}")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    return logger, stream, handler


def test_the_console_writes_info_lines_together_and_soon_without_more_logging():
    logger, stream, _ = console(flush_after=0.3)

    logger.info("one")
    logger.info("two")

    assert stream.getvalue() == "", "held for a moment"
    wait_for(lambda: stream.getvalue() == "INFO one\nINFO two\n", timeout=3, interval=0.05,
             message="the held lines written by the flusher")


def test_a_warning_goes_out_at_once_after_the_lines_held_before_it():
    logger, stream, _ = console(flush_after=60)

    logger.info("claimed")
    logger.warning("lost the database")

    assert stream.getvalue() == "INFO claimed\nWARNING lost the database\n"


def test_a_clean_stop_writes_what_is_held_and_flush_after_0_writes_each_line_at_once():
    logger, stream, handler = console(flush_after=60)
    logger.info("done")
    handler.flush()  # what logging.shutdown does at exit
    assert stream.getvalue() == "INFO done\n"

    logger, stream, _ = console(flush_after=0)
    logger.info("done")
    assert stream.getvalue() == "INFO done\n"


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
