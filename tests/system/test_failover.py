"""Failover with real processes on PostgreSQL: kill -9, SIGSTOP zombies, stuck ovens,
and a notifier that dies."""

import os
import random
import signal
import time

import pytest
from django.db import connection

from orders.models import Order, Status
from orders.routing import bucket_for
from orders.services import OrderSpec, place_order, place_orders
from orders import conf
from tests.conftest import wait_for
from tests.handlers import COMPLETIONS_TABLE, completions, create_completions_table
from workers import leadership
from workers.models import Bucket, Event, EventKind, Worker, WorkerStatus

pytestmark = [pytest.mark.postgres, pytest.mark.system]

FAST = {
    "PIZZAQ_HEARTBEAT_INTERVAL": "0.5",
    "PIZZAQ_WORKER_TIMEOUT": "2",
    "PIZZAQ_POLL_INTERVAL": "0.5",
}


def alive(*names):
    return lambda: Worker.objects.filter(name__in=names, status=WorkerStatus.ALIVE).count() == len(names)


def order_status(order):
    return Order.objects.filter(pk=order.pk).values_list("status", "worker", "attempt").first()


def routing_key_owned_by(name: str) -> str:
    """A routing key whose bucket ``name`` owns right now."""
    mine = set(Bucket.objects.filter(owner=name).values_list("number", flat=True))
    buckets = conf.get().buckets
    return next(key for key in (f"customer-{n}" for n in range(100_000)) if bucket_for(key, buckets) in mine)


def test_chaos_three_kill_9s_lose_nothing_and_complete_every_order_once(processes):
    chaos_drain(processes)


def test_the_chaos_drain_holds_with_every_process_behind_pgbouncer_in_transaction_mode(processes, pgbouncer):
    # No DATABASE_LISTEN_URL: LISTEN cannot cross the pooler, so workers poll.
    chaos_drain(processes, **pgbouncer.env)
    assert pgbouncer.transactions() > 4000, "the workers' claims and completions went through it"


def chaos_drain(processes, **env):
    """4,000 orders, four workers, three of them killed -9 mid-drain and replaced."""
    env = {**FAST, **env}
    create_completions_table()
    place_orders([OrderSpec("record", {"seconds": 0.05}) for _ in range(3000)])
    # bake results are written in batches (it is not atomic): each must still complete once.
    place_orders([OrderSpec("bake", {"seconds": 0.02}) for _ in range(1000)])
    processes.notifier("N1", **env)
    live = {f"S{n}": processes.worker(f"S{n}", concurrency=4, **env) for n in range(4)}
    chaos = random.Random(7)
    victims = []
    for replacement in ("S4", "S5", "S6"):
        wait_for(alive(*live), message="every worker to have joined")
        time.sleep(1.5)
        victim = chaos.choice(sorted(live))
        os.kill(live.pop(victim).pid, signal.SIGKILL)
        victims.append(victim)
        live[replacement] = processes.worker(replacement, concurrency=4, **env)

    wait_for(lambda: Order.objects.filter(status=Status.DONE).count() == 4000, timeout=180,
             interval=0.5, message="all 4,000 orders done")
    wait_for(lambda: Event.objects.filter(kind=EventKind.DIED).count() == 3, message="three deaths recorded")

    rows = completions()
    assert len(rows) == 3000, "one completion row per order, none twice"
    assert {row[0] for row in rows} == {str(pk) for pk in Order.objects.filter(kind="record").values_list("pk", flat=True)}
    for history in Order.objects.filter(kind="bake").values_list("history", flat=True):
        assert [entry["outcome"] for entry in history].count("done") == 1
    final = {str(pk): (worker, attempt) for pk, worker, attempt in Order.objects.values_list("pk", "worker", "attempt")}
    assert all(final[order_id] == (worker, attempt) for order_id, worker, attempt in rows)
    deaths = Event.objects.filter(kind=EventKind.DIED)
    assert sorted(deaths.values_list("worker", flat=True)) == sorted(victims)
    assert all("orders moved" in event.message and "declared dead" in event.message for event in deaths)
    assert any(event.data["moved"] for event in deaths)


def inside_the_record_handler() -> bool:
    """Whether a ``record`` run has written its row and sleeps in its open transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
                       f" AND query LIKE 'INSERT INTO {COMPLETIONS_TABLE}%%'")
        return cursor.fetchone()[0] == 1


def freeze_while_another_takes_over(processes, **worker_options):
    """S0 bakes an order and is frozen (SIGSTOP) until S1 has made it; then thawed."""
    create_completions_table()
    processes.notifier("N1", **FAST)
    frozen = processes.worker("S0", concurrency=1, **worker_options, **FAST)
    wait_for(alive("S0"))
    processes.worker("S1", concurrency=1, **FAST)
    wait_for(alive("S1"))
    order = place_order("record", {"seconds": 3}, routing_key=routing_key_owned_by("S0"))
    wait_for(lambda: order_status(order) == (Status.RUNNING, "S0", 1), message="S0 to claim it")
    wait_for(inside_the_record_handler, message="S0 baking")

    frozen.send_signal(signal.SIGSTOP)
    wait_for(lambda: order_status(order) == (Status.DONE, "S1", 2), timeout=30, message="S1 to take over")
    frozen.send_signal(signal.SIGCONT)
    return frozen, order


def test_a_frozen_worker_is_fenced_off_its_late_result_refused_and_it_rejoins(processes):
    frozen, order = freeze_while_another_takes_over(processes)

    wait_for(lambda: Worker.objects.filter(name="S0", status=WorkerStatus.ALIVE, incarnation=2).exists(),
             timeout=15, message="S0 to rejoin as incarnation 2")
    assert frozen.poll() is None, "the same process rejoined; nobody restarted it"
    assert completions() == [(str(order.pk), "S1", 2)]
    log = open(frozen.log_path).read()
    assert "was fenced off" in log and "was declared dead" in log and "rejoins in" in log
    assert Bucket.objects.filter(owner="S0").exists(), "it took its share of the buckets back"
    joined = Event.objects.filter(kind=EventKind.JOINED, worker="S0").order_by("id")
    assert [event.message.split(",")[0] for event in joined] == ["S0 joined (incarnation 1", "S0 joined (incarnation 2"]


def test_with_exit_when_fenced_a_fenced_off_worker_exits_with_code_3_instead(processes):
    frozen, order = freeze_while_another_takes_over(processes, extra_args=["--exit-when-fenced"])

    assert frozen.wait(30) == 3
    assert completions() == [(str(order.pk), "S1", 2)]
    assert Worker.objects.get(name="S0").status == WorkerStatus.DEAD


def test_a_stuck_run_loses_its_lease_and_the_order_completes_in_another_run(processes):
    create_completions_table()
    processes.notifier("N1", **FAST)
    worker = processes.worker("S0", concurrency=2, **FAST)
    order = place_order("hang", {"seconds": 6})

    wait_for(lambda: order_status(order) == (Status.DONE, "S0", 2), timeout=30, message="attempt 2 to finish")
    wait_for(lambda: "discarded its result" in open(worker.log_path).read(), timeout=20,
             message="the stuck run to wake up and be refused")

    assert completions() == [(str(order.pk), "S0", 2)]
    order.refresh_from_db()
    assert [h["outcome"] for h in order.history] == ["lapsed", "done"]


def test_a_standby_notifier_takes_over_and_still_buries_dead_workers(processes):
    notifiers = {name: processes.notifier(name, **FAST) for name in ("N1", "N2")}
    leader = wait_for(lambda: (leadership.current_leader() or ("",))[0], message="a leader")
    processes.worker("S0", concurrency=1, **FAST)
    victim = processes.worker("S1", concurrency=1, **FAST)
    wait_for(alive("S0", "S1"))

    os.kill(notifiers[leader].pid, signal.SIGKILL)
    standby = ({"N1", "N2"} - {leader}).pop()
    wait_for(lambda: Event.objects.filter(kind=EventKind.LEADER, actor=standby).exists(), timeout=20,
             message=f"{standby} to take over")
    os.kill(victim.pid, signal.SIGKILL)

    wait_for(lambda: Event.objects.filter(kind=EventKind.DIED, worker="S1", actor=standby).exists(),
             timeout=20, message="the standby to declare S1 dead")
    assert set(Bucket.objects.values_list("owner", flat=True)) == {"S0"}
