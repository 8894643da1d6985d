"""S2 bulk enqueue: orders placed with each library's batch API, in calls of the sizes
clients send (--bulk-per-call: 10, 100 and 1,000 orders a call) and in one call of all
--bulk orders; orders per second over all the calls. The check: every order is stored
exactly once."""

from bench import harness
from bench.harness import BenchError, Variant
from bench.scenarios.s1_enqueue import check_stored

FIGURES = {"bulk": ("orders/s", True)}
# The group of one call of every order (the headline's row).
ONE_CALL = "batch API"


def group(per_call: int, n: int) -> str:
    return ONE_CALL if not per_call or per_call >= n else f"batch API, calls of {per_call:,}"


def run(queues, options) -> dict:
    n = options.bulk
    sizes = [*options.bulk_per_call, 0]
    variants = [Variant(f"{q.label} ({group(size, n)})", q, lambda db, q=q, size=size: bulk(q, db, n, size),
                        group(size, n)) for size in sizes for q in queues]
    tables = harness.side_by_side("s2", variants, FIGURES, options.runs)
    harness.print_table(f"S2 bulk enqueue: {n:,} orders, in calls of each size and in one", tables["bulk"])
    return {"orders": n, "per_call": sizes, "tables": harness.tables_json(tables)}


def bulk(queue, db: str, n: int, per_call: int) -> dict:
    if not queue.has_bulk:
        raise BenchError("no batch API")
    seconds = queue.drive(db, "bulk", n=n, per_call=per_call)["seconds"]
    check_stored(queue, db, n)
    return {"bulk": n / seconds}
