"""Rush hour: clients place orders faster than the shop bakes them, for a fixed time.
The queue buffers, nothing accepted is lost, and no process grows without bound."""

import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from orders.models import Order, Status
from orders.tokens import create_token
from tests.conftest import wait_for
from tests.system.procs import free_port
from tests.system.test_failover import FAST, alive
from tests.system.test_make_run import http

pytestmark = [pytest.mark.postgres, pytest.mark.system]

CLIENTS = 8
ARRIVALS_PER_SECOND = 24  # all clients together
RUSH_SECONDS = 6
BAKE_SECONDS = 0.25  # one worker, concurrency 3: about 12 orders a second served


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(pid)


def rush(base_url: str, token: str, accepted: list, refused: list) -> None:
    """One client: an order every CLIENTS/ARRIVALS_PER_SECOND seconds until the rush ends."""
    interval, deadline = CLIENTS / ARRIVALS_PER_SECOND, time.monotonic() + RUSH_SECONDS
    while time.monotonic() < deadline:
        status, body = http("POST", base_url + "/api/orders", token, {"kind": "bake", "payload": {"seconds": BAKE_SECONDS}})
        (accepted if status == 202 else refused).append(body["id"] if status == 202 else status)
        time.sleep(interval)


def test_rush_hour_is_buffered_and_every_accepted_order_is_made(processes, django_user_model):
    user = django_user_model.objects.create_user("till")
    _, token = create_token(user, "load")
    port = free_port()
    # One web process, serving in-process, so its memory is the server's own.
    web = processes.start_command([sys.executable, "manage.py", "serve", "--port", str(port), "--processes", "1"],
                                  "web", PIZZAQ_LOG_LEVEL="WARNING", **FAST)
    processes.notifier("N1", **FAST)
    worker = processes.worker("S0", concurrency=3, PIZZAQ_LOG_LEVEL="WARNING", **FAST)
    base_url = f"http://127.0.0.1:{port}"
    wait_for(alive("S0"), timeout=30)
    wait_for(lambda: http("GET", base_url + "/api/orders", token)[0] == 200, timeout=30, message="the web server")
    memory_before = {"web": rss_mib(web.pid), "worker": rss_mib(worker.pid)}
    accepted, refused, deepest = [], [], 0

    clients = [threading.Thread(target=rush, args=(base_url, token, accepted, refused)) for _ in range(CLIENTS)]
    for client in clients:
        client.start()
    while any(client.is_alive() for client in clients):
        deepest = max(deepest, Order.objects.filter(status=Status.QUEUED).count())
        time.sleep(0.2)

    wait_for(lambda: Order.objects.filter(status=Status.DONE).count() == len(accepted), timeout=120,
             interval=0.5, message="every accepted order to be made")
    assert refused == [] and len(accepted) >= ARRIVALS_PER_SECOND * RUSH_SECONDS * 0.5
    done = set(Order.objects.filter(status=Status.DONE).values_list("id", flat=True))
    assert done == {uuid.UUID(order_id) for order_id in accepted}
    assert deepest >= 10, "orders arrived faster than they were made, so the queue should have buffered them"
    growth = {name: rss_mib(process.pid) - memory_before[name] for name, process in (("web", web), ("worker", worker))}
    assert all(mib < 60 for mib in growth.values()), growth
