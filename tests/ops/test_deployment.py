"""The deployment guide's multi-host layout, on one machine: two workers that say they run
on different hosts, a notifier and the web process, all against one PostgreSQL."""

import subprocess
import sys

import pytest

from orders.models import Order, Status
from tests.conftest import ROOT, process_env, wait_for
from tests.ops.helpers import http_get, http_json, parse_metrics, sample, start_web
from workers.models import Worker, WorkerStatus

pytestmark = [pytest.mark.postgres, pytest.mark.system]

FAST = {"PIZZAQ_HEARTBEAT_INTERVAL": "0.5", "PIZZAQ_WORKER_TIMEOUT": "2", "PIZZAQ_POLL_INTERVAL": "0.5"}


def manage(*args: str) -> str:
    """A one-off ``manage.py`` command, as an operator types it; its standard output."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=process_env(**FAST),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_workers_on_two_hosts_share_one_database_and_are_watched_as_one_queue(processes):
    processes.notifier("N1", **FAST)
    processes.worker("S0", concurrency=2, PIZZAQ_HOSTNAME="host-a", **FAST)
    processes.worker("S1", concurrency=2, PIZZAQ_HOSTNAME="host-b", **FAST)
    web = start_web(processes, **FAST)
    wait_for(lambda: Worker.objects.filter(status=WorkerStatus.ALIVE).count() == 2, message="both workers")

    assert manage("placeorders", "noop", "--count", "300").strip() == "placed 300 noop orders"
    wait_for(lambda: Order.objects.filter(status=Status.DONE).count() == 300, timeout=60, message="300 done")

    assert dict(Worker.objects.values_list("name", "host")) == {"S0": "host-a", "S1": "host-b"}
    assert set(Order.objects.values_list("worker", flat=True)) == {"S0", "S1"}, "both hosts made orders"
    status, ready = http_json(f"{web}/readyz")
    assert (status, ready["ready"]) == (200, True), ready
    status, text = http_get(f"{web}/metrics")
    metrics = parse_metrics(text)
    assert sample(metrics, "pizzaq_orders_done_total", kind="noop") == 300
    assert sample(metrics, "pizzaq_notifier_leader", notifier="N1") == 1
    assert sample(metrics, "pizzaq_worker_heartbeat_age_seconds", worker="S0", host="host-a") is not None
    assert sample(metrics, "pizzaq_worker_heartbeat_age_seconds", worker="S1", host="host-b") is not None
    board = manage("queuestatus")
    assert "host-a" in board and "host-b" in board and "notifier leader: N1" in board
