"""S7 outages (pizzaq only; no peer is measured here): how fast pizzaq carries on after
the faults it rides out.

- database return -> first completed order: a notifier and two workers drain a backlog of
  short orders on a PostgreSQL server of the benchmark's own; the server is stopped in
  immediate mode (a crash) for longer than the worker timeout and started again. The time
  from its return (it accepts connections) to the next order done, and the check that
  nobody was declared dead for the outage.
- partition -> takeover: a worker in a network namespace of its own runs a long order;
  every packet between it and the database is dropped (no reset); the time until another
  worker runs the order, and until the cut-off worker has rejoined once the network heals.

    .venv/bin/python -m bench.outages [--runs 3]     # as root (network namespaces)

It reuses the system tests' private server and namespace helpers. Writes
bench/results/s7-outages.json and prints the medians."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.system.netns import NetworkNamespace
from tests.system.postgres_instance import PostgresInstance, migrated_database

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {
    "defaults (heartbeat 2 s, timeout 10 s)": {},
    "heartbeat 1 s, timeout 3 s": {"PIZZAQ_HEARTBEAT_INTERVAL": "1", "PIZZAQ_WORKER_TIMEOUT": "3"},
}


def scalar(url: str, sql: str, *params):
    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute(sql, params).fetchone()[0]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except psycopg.OperationalError:
            pass  # the server is not back yet
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def processes(url: str, settings: dict, logs: Path):
    started = []

    def start(args: list[str], label: str, prefix=(), database=url):
        env = {**os.environ, **settings, "DATABASE_URL": database, "PYTHONUNBUFFERED": "1"}
        log = open(logs / f"s7-{label}.log.tmp", "w")
        started.append(subprocess.Popen([*prefix, sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        return started[-1]

    try:
        yield start
    finally:
        for process in started:
            process.kill()
            process.wait()


def place(url: str, count: int, seconds: float, routing_key: str = "") -> None:
    key = f", routing_key={routing_key!r}" if routing_key else ""
    code = ("import django; django.setup()\nfrom orders.services import OrderSpec, place_orders\n"
            f"place_orders([OrderSpec('bake', {{'seconds': {seconds}}}{key}) for _ in range({count})])")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, check=True)


def timeout_of(settings: dict) -> float:
    return float(settings.get("PIZZAQ_WORKER_TIMEOUT", 10))


def database_return(settings: dict, logs: Path) -> dict:
    with PostgresInstance() as server:
        url = migrated_database(server)
        place(url, 5000, seconds=0.01)
        with processes(url, settings, logs) as start:
            start(["notifier"], "notifier")
            for n in range(2):
                start(["runworker", "--name", f"S{n}", "--concurrency", "4"], f"S{n}")
            done = lambda: scalar(url, "SELECT count(*) FROM orders_order WHERE status = 'done'")  # noqa: E731
            wait_for(lambda: done() >= 500, 60, "the drain to be under way")
            server.stop("immediate")
            time.sleep(timeout_of(settings) + 2)
            server.start()
            back = time.monotonic()
            before = done()
            wait_for(lambda: done() > before, 60, "an order done after the return")
            first = time.monotonic() - back
            wait_for(lambda: done() == 5000, 120, "the drain to finish", interval=0.2)
            deaths = scalar(url, "SELECT count(*) FROM workers_event WHERE kind = 'died'")
    return {"return_to_first_done_s": first, "declared_dead": deaths}


def partition(settings: dict, logs: Path) -> dict:
    with NetworkNamespace() as host, PostgresInstance(listen_addresses=("127.0.0.1", host.host_address)) as server:
        url = migrated_database(server)
        with processes(url, settings, logs) as start:
            start(["notifier"], "notifier")
            start(["runworker", "--name", "S0", "--concurrency", "1", "--prefetch", "0"], "S0",
                  prefix=host.command([]), database=server.url("pizzaq", host=host.host_address))
            wait_for(lambda: scalar(url, "SELECT count(*) FROM workers_worker WHERE status = 'alive'"), 30, "S0")
            start(["runworker", "--name", "S1", "--concurrency", "1", "--prefetch", "0"], "S1")
            wait_for(lambda: scalar(url, "SELECT count(*) FROM workers_worker WHERE status = 'alive'") == 2, 30,
                     "S1")
            time.sleep(1)
            owned = scalar(url, "SELECT min(number) FROM workers_bucket WHERE owner = 'S0'")
            place(url, 1, seconds=60, routing_key=key_in_bucket(owned))
            # max(): one row even while the order is between workers (queued, no row running).
            on = lambda: scalar(url, "SELECT max(worker) FROM orders_order WHERE status = 'running'")  # noqa: E731
            wait_for(lambda: on() == "S0", 30, "S0 to run the long order")
            time.sleep(1.0)  # a heartbeat passes: the cut comes at a random moment of the cycle
            host.cut()
            cut = time.monotonic()
            wait_for(lambda: on() == "S1", 60, "S1 to take the order over")
            takeover = time.monotonic() - cut
            host.heal()
            healed = time.monotonic()
            wait_for(lambda: scalar(url, "SELECT incarnation FROM workers_worker WHERE name = 'S0'") == 2
                     and scalar(url, "SELECT status FROM workers_worker WHERE name = 'S0'") == "alive", 60,
                     "S0 to rejoin")
            rejoined = time.monotonic() - healed
    return {"cut_to_takeover_s": takeover, "heal_to_rejoined_s": rejoined}


def key_in_bucket(bucket: int) -> str:
    from orders.routing import bucket_for

    return next(key for key in (f"customer-{n}" for n in range(1_000_000)) if bucket_for(key, 1024) == bucket)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    logs = ROOT / "bench" / "results"
    results = {}
    for label, settings in SETTINGS.items():
        measured = [{**database_return(settings, logs), **partition(settings, logs)} for _ in range(runs)]
        medians = {figure: round(statistics.median(run[figure] for run in measured), 2) for figure in measured[0]}
        results[label] = {"runs": measured, "median": medians}
        print(f"| {label} | " + " | ".join(f"{figure} {value}" for figure, value in medians.items()) + " |",
              flush=True)
    (logs / "s7-outages.json").write_text(json.dumps({"runs": runs, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzaq.settings")
    import django

    django.setup()
    main()
