"""S5 recovery: a worker running a 60 s job is killed with kill -9 (its whole process
group: nothing is cleaned up); seconds until the job starts again on the other worker,
polled every 20 ms. Each peer runs with its own recovery setting (see the table); one
that does not act within the bounded wait is reported as "never" (one with no recovery
mechanism at all is tried once, not three times).
The check: after recovery the job has started exactly twice (once per worker)."""

import time

from bench import harness
from bench.harness import BenchError, Variant

FIGURES = {"recovery": ("s", False)}
# pizzaq's two settings, as in its earlier recovery benchmark.
PIZZAQ_SETTINGS = {
    "pizzaq: defaults (heartbeat 2 s, timeout 10 s)": {},
    "pizzaq: heartbeat 1 s, timeout 3 s": {"PIZZAQ_HEARTBEAT_INTERVAL": "1", "PIZZAQ_WORKER_TIMEOUT": "3"},
}


def run(queues, options) -> dict:
    variants = []
    for q in queues:
        if q.name == "pizzaq":
            variants += [Variant(label, q, lambda db, q=q, s=settings: recovery(q, db, options.recovery_wait, s),
                                 "kill -9") for label, settings in PIZZAQ_SETTINGS.items()]
        else:
            variants.append(Variant(f"{q.label}: {q.recovery_setting}", q,
                                    lambda db, q=q: recovery(q, db, options.recovery_wait, {}), "kill -9",
                                    max_runs=None if q.recovers else 1))
    tables = harness.side_by_side("s5", variants, FIGURES, options.runs)
    harness.print_table("S5 recovery: kill -9 of the worker running a 60 s job → the job starts again",
                        tables["recovery"])
    return {"bounded_wait_s": options.recovery_wait, "tables": harness.tables_json(tables)}


def recovery(queue, db: str, bound: float, settings: dict) -> dict:
    with harness.running() as started:
        if queue.name == "pizzaq":
            started.append(queue.notifier(db, **settings))
        started.append(queue.start_worker(db, 0, False, recovery=True, **settings))
        # Only worker 0 is up, so it takes the job; worker 1 joins once it runs.
        job = queue.drive(db, "long", recovery=True, sleep=60)["job"]
        harness.wait_for(lambda: queue.starts_of(db, job) == 1, timeout=30, what="the long job to start")
        started.append(queue.start_worker(db, 1, False, recovery=True, **settings))
        queue.wait_ready(db, 1)
        time.sleep(1.0)  # let a heartbeat pass, as in a crash at a random moment
        killed = time.monotonic()
        harness.kill9(started[-2])
        try:
            harness.wait_for(lambda: queue.starts_of(db, job) >= 2, timeout=bound, what="the job to start again")
        except BenchError:
            raise BenchError(f"never (not within {bound:.0f} s)") from None
        seconds = time.monotonic() - killed
        if (starts := queue.starts_of(db, job)) != 2:
            raise BenchError(f"check failed: the job started {starts} times, not 2")
    return {"recovery": seconds}
