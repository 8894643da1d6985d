"""Named queues with real processes on PostgreSQL: every order runs only on a worker that
serves its queue, also after a kill -9, and a queue nobody serves waits for one."""

import os
import signal
import time
import uuid

import pytest
from django.core.management import call_command

from orders.models import Order, Status
from orders.services import OrderSpec, place_orders
from tests.conftest import wait_for
from tests.handlers import completions, create_completions_table
from tests.system.test_failover import FAST, alive
from workers.models import Event, EventKind

pytestmark = [pytest.mark.postgres, pytest.mark.system]

SERVES = {"S0": {"a"}, "S1": {"b"}, "S2": {"a", "b"}, "S3": {"c"}}


def done(count: int):
    return lambda: Order.objects.filter(status=Status.DONE).count() >= count


def test_orders_run_only_where_their_queue_is_served_through_a_kill_9_and_an_unserved_queue_waits(processes):
    create_completions_table()
    place_orders([OrderSpec("record", {"seconds": 0.03}, queue=queue) for queue in ("a", "b") for _ in range(300)])
    processes.notifier("N1", **FAST)
    processes.worker("S0", concurrency=2, extra_args=["--queues", "a"], **FAST)
    processes.worker("S1", concurrency=2, extra_args=["--queues", "b"], **FAST)
    both = processes.worker("S2", concurrency=4, extra_args=["--queues", "a,b"], **FAST)

    wait_for(done(150), timeout=60, message="a quarter of the orders done")
    os.kill(both.pid, signal.SIGKILL)
    wait_for(lambda: Event.objects.filter(kind=EventKind.DIED, worker="S2").exists(), message="S2 declared dead")
    wait_for(done(600), timeout=120, interval=0.5, message="all 600 orders done")

    place_orders([OrderSpec("record", {"seconds": 0}, queue="c") for _ in range(20)])
    time.sleep(2)  # four claim rounds of the two live workers
    assert Order.objects.filter(queue="c", status=Status.QUEUED).count() == 20, "nobody serves c: it waits"
    processes.worker("S3", extra_args=["--queues", "c"], **FAST)
    wait_for(done(620), timeout=60, message="the c orders done once S3 serves c")

    rows = completions()
    queue_of = dict(Order.objects.values_list("id", "queue"))
    assert len(rows) == 620 and len({order_id for order_id, _, _ in rows}) == 620, "each order ran once"
    wrong = [(order_id, worker) for order_id, worker, _ in rows if queue_of[uuid.UUID(order_id)] not in SERVES[worker]]
    assert wrong == []
    by_worker = {name: sum(worker == name for _, worker, _ in rows) for name in SERVES}
    assert all(by_worker.values()), by_worker
    assert alive("S0", "S1", "S3")()


def test_a_paused_queue_keeps_its_orders_through_a_restart_of_every_process_and_runs_them_on_resume(processes):
    call_command("pausequeue", "emails", "--actor", "ops")
    place_orders([OrderSpec("bake", {"seconds": 0}, queue="emails") for _ in range(50)])
    place_orders([OrderSpec("bake", {"seconds": 0}) for _ in range(10)])
    first = [processes.notifier("N1", **FAST), processes.worker("S0", concurrency=4, **FAST)]
    wait_for(lambda: Order.objects.filter(queue="default", status=Status.DONE).count() == 10,
             message="the open queue's orders done")

    for process in first:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    processes.notifier("N2", **FAST)
    processes.worker("S1", concurrency=4, **FAST)
    wait_for(alive("S1"), message="the new worker to join")
    time.sleep(1.5)  # several claim rounds
    assert Order.objects.filter(queue="emails", status=Status.QUEUED).count() == 50

    call_command("resumequeue", "emails", "--actor", "ops")
    wait_for(lambda: Order.objects.filter(queue="emails", status=Status.DONE).count() == 50, timeout=30,
             message="every paused order done after the resume")
