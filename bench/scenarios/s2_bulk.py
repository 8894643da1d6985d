"""S2 bulk enqueue: orders placed with each library's batch API in one call; orders per
second. The check: every order is stored exactly once."""

from bench import harness
from bench.harness import BenchError, Variant
from bench.scenarios.s1_enqueue import check_stored

FIGURES = {"bulk": ("orders/s", True)}


def run(queues, options) -> dict:
    n = options.bulk
    variants = [Variant(q.label, q, lambda db, q=q: bulk(q, db, n), "batch API") for q in queues]
    tables = harness.side_by_side("s2", variants, FIGURES, options.runs)
    harness.print_table(f"S2 bulk enqueue: {n:,} orders in one batch call", tables["bulk"])
    return {"orders": n, "tables": harness.tables_json(tables)}


def bulk(queue, db: str, n: int) -> dict:
    if not queue.has_bulk:
        raise BenchError("no batch API")
    seconds = queue.drive(db, "bulk", n=n)["seconds"]
    check_stored(queue, db, n)
    return {"bulk": n / seconds}
