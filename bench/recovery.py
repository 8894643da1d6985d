"""Recovery time: from `kill -9` of a worker running an order to that order running again
on another worker. PostgreSQL; real processes; median of several runs per setting.

    .venv/bin/python bench/recovery.py [--runs 3] [--database-url postgres://.../pizzaq_bench]
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETTINGS = {
    "defaults (heartbeat 2 s, timeout 10 s)": {},
    "heartbeat 1 s, timeout 3 s": {"PIZZAQ_HEARTBEAT_INTERVAL": "1", "PIZZAQ_WORKER_TIMEOUT": "3"},
}


def manage(args, env, **popen):
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **popen)


def reset_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True,
                   env={**os.environ, "DATABASE_URL": url})


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise TimeoutError


def one_run(url: str, extra_env: dict) -> float:
    from orders.models import Order, Status
    from orders.services import place_order
    from workers.models import Worker, WorkerStatus

    from django.db import connections

    connections.close_all()  # the database is about to be dropped under us
    reset_database(url)
    env = {**os.environ, "DATABASE_URL": url, **extra_env}
    processes = [manage(["notifier"], env), manage(["runworker", "--name", "S0"], env)]
    try:
        wait_for(lambda: Worker.objects.filter(name="S0", status=WorkerStatus.ALIVE).exists())
        processes.append(manage(["runworker", "--name", "S1"], env))
        wait_for(lambda: Worker.objects.filter(name="S1", status=WorkerStatus.ALIVE).exists())
        # Pinned to nobody, routed by key: find a key the dying shop owns.
        from workers.models import Bucket
        from orders.routing import bucket_for
        from pizzaq import conf

        s0 = set(Bucket.objects.filter(owner="S0").values_list("number", flat=True))
        key = next(k for k in (f"c{n}" for n in range(10**5)) if bucket_for(k, conf.get().buckets) in s0)
        order = place_order("bake", {"seconds": 60}, routing_key=key)
        wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.RUNNING, worker="S0").exists())
        time.sleep(1.0)  # let a heartbeat pass, as in a real crash at a random moment
        killed = time.monotonic()
        os.kill(processes[1].pid, signal.SIGKILL)
        wait_for(lambda: Order.objects.filter(pk=order.pk, status=Status.RUNNING, worker="S1").exists())
        return time.monotonic() - killed
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/pizzaq_bench")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "recovery.json"))
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzaq.settings")
    import django

    django.setup()
    results = {}
    for label, extra_env in SETTINGS.items():
        timings = []
        for run in range(1, args.runs + 1):
            timings.append(one_run(args.database_url, extra_env))
            print(f"{label}: run {run}/{args.runs}: {timings[-1]:.2f} s", flush=True)
        results[label] = {"runs": timings, "median": statistics.median(timings),
                          "min": min(timings), "max": max(timings)}
    print("\n| setting | median | min | max |\n|---|---|---|---|")
    for label, r in results.items():
        print(f"| {label} | {r['median']:.2f} s | {r['min']:.2f} s | {r['max']:.2f} s |")
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
