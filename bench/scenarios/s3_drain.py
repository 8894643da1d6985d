"""S3 drain: a queue of no-op orders, then workers start; orders per second from the
first start to the last finish, as the queue itself recorded them (so worker start-up
is not counted). Once with one worker process on its defaults, and with one and with two
worker processes tuned for throughput. The check: every order ran exactly once. What the drain
cost: CPU seconds per 10,000 orders, of the workers and of the queue's store (bench.cost)."""

import time

from bench import harness
from bench.cost import Meter
from bench.harness import BenchError, Variant

FIGURES = {"drain": ("orders/s", True), "worker_cpu": ("CPU s / 10k orders", False),
           "store_cpu": ("CPU s / 10k orders", False)}
DEFAULTS, TUNED_ONE, TUNED = "1 worker, defaults", "1 worker, tuned", "2 workers, tuned"
DEFAULT_LOG = "1 worker, defaults, default log level"
# The size `all` runs, whose results the headline table reads; other sizes get files of
# their own.
DEFAULT_DRAIN = 3_000


def results_name(options) -> str:
    return "s3" if options.drain == DEFAULT_DRAIN else f"s3-{options.drain}"


def run(queues, options) -> dict:
    n = options.drain
    variants = [Variant(f"{q.label}: {q.default_worker}", q,
                        lambda db, q=q: drain(q, db, n, 1, False, options), DEFAULTS) for q in queues]
    variants += [Variant(f"{q.label}: {workers} × {q.tuned_worker}", q,
                         lambda db, q=q, workers=workers: drain(q, db, n, workers, True, options), group)
                 for workers, group in ((1, TUNED_ONE), (2, TUNED)) for q in queues]
    # The runs above keep every queue at WARNING; users run pizzaq at its default level,
    # INFO, where each run is one log line.
    variants += [Variant(f"{q.label}: {q.default_worker}, log level INFO (its default)", q,
                         lambda db, q=q: drain(q, db, n, 1, False, options, PIZZAQ_LOG_LEVEL="INFO"), DEFAULT_LOG)
                 for q in queues if q.name == "pizzaq"]
    tables = harness.side_by_side("s3", variants, FIGURES, options.runs)
    harness.print_table(f"S3 drain: {n:,} queued no-op orders", tables["drain"])
    harness.print_table("S3 cost: CPU of the worker processes", tables["worker_cpu"])
    harness.print_table("S3 cost: CPU of the store (PostgreSQL's server processes; Redis for Celery)",
                        tables["store_cpu"])
    return {"orders": n, "tables": harness.tables_json(tables)}


def drain(queue, db: str, n: int, workers: int, tuned: bool, options, **settings) -> dict:
    queue.drive(db, "fill", n=n)
    with harness.running() as started:
        started.extend(queue.start_worker(db, i, tuned, **settings) for i in range(workers))
        meter = Meter(queue, db, started)
        wait_until_finished(queue, db, n, options.drain_timeout, started, meter)
        cost = meter.per_10k(n)
    if problems := queue.ran_once_problems(db, n):
        raise BenchError("check failed: " + "; ".join(problems))
    return {"drain": n / queue.drain_seconds(db), **cost}


def wait_until_finished(queue, db: str, n: int, timeout: float, workers: list,
                        meter: Meter | None = None) -> None:
    """Poll twice a second (a count is cheap, but not free for the queue being measured);
    give up at once if a worker died (its log is in bench/results/*.log.tmp). ``meter``
    takes its first sample at the first poll that finds orders done."""
    deadline = time.monotonic() + timeout
    while (done := queue.finished(db)) < n:
        if meter is not None:
            meter.note(done)
        if any(worker.poll() is not None for worker in workers):
            raise BenchError(f"a {queue.label} worker exited after {done:,} of {n:,} jobs")
        if time.monotonic() > deadline:
            raise BenchError(f"only {done:,} of {n:,} finished within {timeout:.0f} s")
        time.sleep(0.5)
