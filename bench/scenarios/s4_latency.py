"""S4 latency: one idle worker on its defaults; one order placed every 20 ms for 10 s;
place → start of each order as the queue recorded it, p50 and p99. The check: every
order ran exactly once."""

from bench import harness
from bench.harness import BenchError, Variant
from bench.scenarios.s3_drain import wait_until_finished

FIGURES = {"p50": ("ms", False), "p99": ("ms", False)}


def run(queues, options) -> dict:
    variants = [Variant(f"{q.label}: {q.default_worker}", q, lambda db, q=q: latency(q, db, options), "idle worker")
                for q in queues]
    # What the PostgreSQL peers record as a job's start is the time of the statement that
    # claims it (its transaction's start), before that claim is even committed; pizzaq
    # records both that and when its handler began, later by the claim's commit and the
    # hand-over to a thread. Both are measured: like for like, and the stricter one.
    variants += [Variant(f"{q.label}: {q.default_worker}, place → claimed", q,
                         lambda db, q=q: latency(q, db, options, q.claim_latencies_ms), "idle worker")
                 for q in queues if hasattr(q, "claim_latencies_ms")]
    tables = harness.side_by_side("s4", variants, FIGURES, options.runs)
    pace = f"one order every {options.every_ms:g} ms for {options.seconds:g} s"
    harness.print_table(f"S4 latency p50, place → start ({pace})", tables["p50"])
    harness.print_table(f"S4 latency p99, place → start ({pace})", tables["p99"])
    return {"every_ms": options.every_ms, "seconds": options.seconds, "tables": harness.tables_json(tables)}


def latency(queue, db: str, options, read=None) -> dict:
    with harness.running(queue.start_worker(db, 0, tuned=False)) as started:
        queue.wait_ready(db, 0)
        placed = queue.drive(db, "paced", every_ms=options.every_ms, seconds=options.seconds)["placed"]
        wait_until_finished(queue, db, placed, 30, started)
    if problems := queue.ran_once_problems(db, placed):
        raise BenchError("check failed: " + "; ".join(problems))
    samples = (read or queue.latencies_ms)(db)
    return {"p50": harness.percentile(samples, 0.50), "p99": harness.percentile(samples, 0.99)}
