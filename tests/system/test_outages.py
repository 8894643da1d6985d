"""The database crashing under load, and a worker cut off from it by the network: nothing
accepted is lost, no attempt runs twice, nobody is declared dead for a silence nobody could
hear, and no process has to be restarted by a person.

Each test has a PostgreSQL server of its own (it crashes it) and, for the partition, a
network namespace of its own for the worker it cuts off."""

import os
import sys
import time

import psycopg
import pytest

from orders.routing import bucket_for
from tests.conftest import run_python, wait_for
from tests.handlers import COMPLETIONS_TABLE, appended
from tests.system.netns import NetworkNamespace
from tests.system.postgres_instance import PostgresInstance, migrated_database

pytestmark = [pytest.mark.postgres, pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="runs servers as the postgres user and makes network namespaces: needs root")]

TIMEOUT = 2.0
FAST = {
    "PIZZAQ_HEARTBEAT_INTERVAL": "0.5",
    "PIZZAQ_WORKER_TIMEOUT": str(TIMEOUT),
    "PIZZAQ_POLL_INTERVAL": "0.5",
    # A claim whose answer was lost in the crash comes back after this, not after 30 s.
    "PIZZAQ_VISIBILITY_TIMEOUT": "5",
}
# Longer than the worker timeout: every heartbeat is older than that when the server is back.
OUTAGE = 2 * TIMEOUT


def rows(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


def count(url: str, sql: str, *params) -> int:
    return rows(url, sql, *params)[0][0]


def place_appends(url: str, evidence, number: int, seconds: float, routing_keys=None) -> None:
    """Place ``number`` orders of the ``append`` handler (in a fresh process, on ``url``)."""
    keys = routing_keys or [None] * number
    place(url, f"[OrderSpec('append', {{'path': {str(evidence)!r}, 'seconds': {seconds}}}, routing_key=key)"
               f" for key in {keys!r}]")


def place(url: str, specs: str) -> None:
    """Place the OrderSpecs the expression ``specs`` makes, in a fresh process, on ``url``."""
    run_python(f"import django; django.setup()\nfrom orders.services import OrderSpec, place_orders\n"
               f"place_orders({specs})", DATABASE_URL=url)


def done(url: str) -> int:
    return count(url, "SELECT count(*) FROM orders_order WHERE status = 'done'")


def deaths(url: str) -> int:
    return count(url, "SELECT count(*) FROM workers_event WHERE kind IN ('died', 'force_failed')")


@pytest.fixture
def private_postgres():
    with PostgresInstance() as instance:
        yield instance


def test_a_database_crash_under_load_loses_nothing_runs_nothing_twice_and_buries_nobody(
        processes, private_postgres, tmp_path):
    url = migrated_database(private_postgres)
    evidence = tmp_path / "evidence"
    place_appends(url, evidence, 3000, seconds=0.05)
    # And orders whose handler writes to the database in its completion transaction, with
    # one try each: an outage under them must not use it up.
    with psycopg.connect(url) as conn:
        conn.execute(f"CREATE TABLE {COMPLETIONS_TABLE} (order_id varchar(40), worker varchar(100), attempt integer)")
    place(url, "[OrderSpec('record', {'seconds': 0.05}, max_attempts=1) for _ in range(500)]")
    started = [processes.notifier("N1", DATABASE_URL=url, **FAST)]
    started += [processes.worker(f"S{n}", concurrency=4, DATABASE_URL=url, **FAST) for n in range(3)]

    for mid_drain in (600, 1800):
        wait_for(lambda: done(url) >= mid_drain, timeout=90, interval=0.2, message=f"{mid_drain} orders done")
        private_postgres.stop("immediate")
        time.sleep(OUTAGE)
        private_postgres.start()
    place_appends(url, evidence, 100, seconds=0)  # orders placed after the outages are made too

    wait_for(lambda: done(url) == 3600, timeout=120, interval=0.5, message="all 3,600 orders done")
    runs = [(order, attempt) for order, attempt, _ in appended(evidence)]
    assert len(runs) == len(set(runs)), "no (order, attempt) ran twice"
    # Nor any order: no claim was lost for good, no result was given up.
    assert len({order for order, _ in runs}) == len(runs) == 3100, "every pizza was made once"
    finals = set(rows(url, "SELECT id::text, attempt FROM orders_order WHERE kind = 'append'"))
    assert len(finals) == 3100 and finals <= set(runs), "every order's final attempt was a run that happened"
    committed = rows(url, f"SELECT order_id, count(*) FROM {COMPLETIONS_TABLE} GROUP BY order_id")
    assert len(committed) == 500 and {n for _, n in committed} == {1}, "each completion committed once"
    assert deaths(url) == 0, "nobody was declared dead for the outages"
    assert rows(url, "SELECT DISTINCT incarnation FROM workers_worker") == [(1,)], "nobody had to rejoin"
    assert all(process.poll() is None for process in started), "every process rode the outages out"
    for process in started[1:]:
        log = open(process.log_path).read()
        assert 2 <= log.count("lost the database") == log.count("reached the database again") <= 4, \
            "an outage is a line going and a line coming back, not one per failed call"


@pytest.fixture
def namespace():
    with NetworkNamespace() as host:
        yield host


def keys_owned_by(url: str, worker: str, number: int) -> list[str]:
    mine = {bucket for (bucket,) in rows(url, "SELECT number FROM workers_bucket WHERE owner = %s", worker)}
    keys = (f"customer-{n}" for n in range(100_000))
    return [key for key in keys if bucket_for(key, 1024) in mine][:number]


def worker_row(url: str, name: str) -> tuple:
    return rows(url, "SELECT status, incarnation FROM workers_worker WHERE name = %s", name)[0]


def test_a_worker_cut_off_from_the_database_is_replaced_refused_and_rejoins(processes, namespace, tmp_path):
    with PostgresInstance(listen_addresses=("127.0.0.1", namespace.host_address)) as server:
        url = migrated_database(server)
        processes.notifier("N1", DATABASE_URL=url, **FAST)
        processes.worker("S1", concurrency=4, prefetch=0, DATABASE_URL=url, **FAST)
        wait_for(lambda: rows(url, "SELECT count(*) FROM workers_worker WHERE status = 'alive'") == [(1,)])
        # S0 lives on a host of its own, and reaches the database over the veth pair.
        cut_off = processes.start_command(namespace.command(
            [sys.executable, "manage.py", "runworker", "--name", "S0", "--concurrency", "4", "--prefetch", "0"]),
            "S0", DATABASE_URL=server.url("pizzaq", host=namespace.host_address), **FAST)
        wait_for(lambda: worker_row(url, "S0") == ("alive", 1) if count(
            url, "SELECT count(*) FROM workers_worker WHERE name = 'S0'") else False, message="S0 to join")
        evidence = tmp_path / "evidence"
        place_appends(url, evidence, 4, seconds=4, routing_keys=keys_owned_by(url, "S0", 4))
        wait_for(lambda: len(appended(evidence)) == 4, message="S0 to start all four")

        namespace.cut()
        cut_at = time.monotonic()
        wait_for(lambda: count(url, "SELECT count(*) FROM orders_order WHERE worker = 'S1'") == 4,
                 timeout=TIMEOUT + 10, interval=0.05, message="S1 to take S0's orders over")
        takeover = time.monotonic() - cut_at
        wait_for(lambda: done(url) == 4, timeout=30, message="S1 to make them")
        namespace.heal()

        wait_for(lambda: worker_row(url, "S0") == ("alive", 2), timeout=30, message="S0 to rejoin")
        histories = rows(url, "SELECT worker, attempt, history FROM orders_order")
        assert all((worker, attempt) == ("S1", 2) for worker, attempt, _ in histories)
        assert all([entry["outcome"] for entry in history].count("done") == 1 for _, _, history in histories), \
            "S0's late results were refused"
        assert sorted(attempt for _, attempt, _ in appended(evidence)) == [1] * 4 + [2] * 4
        assert takeover <= TIMEOUT + 2, f"S1 took over {takeover:.1f} s after the cut"
        assert cut_off.poll() is None, "S0 rejoined by itself"
        log = open(cut_off.log_path).read()
        assert "S0 lost the database" in log and "was declared dead" in log and "rejoins in" in log
