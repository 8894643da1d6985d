"""S6 backlog (pizzaq only; optional and slow): does a deep queue slow pizzaq down, and
does pruning give the space back?

Each run, on a fresh database: with 10,000 queued orders, time single claims and the
drain rate of two tuned workers over a sample of orders; top the queue up to the
backlog size (100,000 by default, --backlog 1000000 for the issue's figure) and measure
the same again. Then every order still queued is marked done in one UPDATE (draining a
million no-ops through workers would take most of an hour; the rows end as a drained
queue's would), finished orders are pruned and the indexes rebuilt as ``pruneorders
--reindex`` does, and the table is VACUUMed as autovacuum would; its heap and index sizes
are compared with the start.
Targets: claim p50 and drain rate within 20% of the 10,000-order figures; sizes back
near the start. The claim's plan at each depth (EXPLAIN ANALYZE) is printed and kept.
The check: every order the workers finished ran exactly once."""

from bench import harness
from bench.harness import BenchError, Series, fmt
from bench.queues import Pizzaq
from bench.scenarios.s3_drain import wait_until_finished

BASE = 10_000
CLAIMS = 200
TOLERANCE = 0.20
SIZES = "SELECT pg_table_size('orders_order'), pg_indexes_size('orders_order')"


def run(queues, options) -> dict:
    pizzaq = Pizzaq()
    figures = figure_series(options.backlog)
    plans = {}  # the claim's plan at each depth, as the last run found it
    with harness.scenario_databases("s6", pizzaq) as fresh:
        for number in range(1, options.runs + 1):
            try:
                measured = measure(pizzaq, fresh(), options, plans)
            except BenchError as error:
                harness.log(f"s6 run {number}/{options.runs}: no figures: {error}")
                continue
            for name, value in measured.items():
                figures[name].values.append(value)
            harness.log(f"s6 run {number}/{options.runs}: " + ", ".join(f"{k} {fmt(v)}" for k, v in measured.items()))
    print_backlog_table(figures, options.backlog)
    for size, plan in plans.items():
        print(f"The claim at {size:,} queued orders, EXPLAIN (ANALYZE, BUFFERS):\n\n```\n{plan}\n```\n")
    return {"base": BASE, "backlog": options.backlog, "sample": options.backlog_sample,
            "figures": {name: series.summary() for name, series in figures.items()},
            "claim_plans": {str(size): plan for size, plan in plans.items()}}


def results_name(options) -> str:
    return f"s6-{options.backlog}"


def figure_series(backlog: int) -> dict[str, Series]:
    figures = {}
    for size in (BASE, backlog):
        figures[f"claim p50 at {size:,}"] = Series("ms", False)
        figures[f"claim p99 at {size:,}"] = Series("ms", False)
        figures[f"drain at {size:,}"] = Series("orders/s", True)
    for moment in ("empty", "full", "pruned"):
        figures[f"table MB, {moment}"] = Series("MB", False)
        figures[f"indexes MB, {moment}"] = Series("MB", False)
    return figures


def measure(pizzaq: Pizzaq, db: str, options, plans: dict) -> dict:
    figures = sizes(db, "empty")
    for size in (BASE, options.backlog):
        figures.update(phase(pizzaq, db, size, options, plans))
    figures.update(sizes(db, "full"))
    prune(pizzaq, db)
    figures.update(sizes(db, "pruned"))
    return figures


def phase(pizzaq: Pizzaq, db: str, backlog: int, options, plans: dict) -> dict:
    """Top the queue up to ``backlog`` queued orders, then time claims and a drain sample."""
    queued = harness.scalar(db, "SELECT count(*) FROM orders_order WHERE status = 'queued'")
    pizzaq.drive(db, "fill", n=backlog - queued, timeout=3600)
    # Both depths are timed on a database as autovacuum leaves it: otherwise the deep one
    # would also pay for what the shallow one left behind (the drained orders' dead index
    # entries, the bucket rows rewritten as workers came and went), not for its depth.
    harness.query(db, "VACUUM ANALYZE")
    timed = pizzaq.drive(db, "claims", n=CLAIMS)
    claims, plans[backlog] = timed["timings_ms"], timed["plan"]
    done_before = pizzaq.finished(db)
    with harness.running() as started:
        started.extend(pizzaq.start_worker(db, i, tuned=True) for i in range(2))
        wait_until_finished(pizzaq, db, done_before + options.backlog_sample, options.drain_timeout, started)
    check_ran_once(db)
    return {f"claim p50 at {backlog:,}": harness.percentile(claims, 0.5),
            f"claim p99 at {backlog:,}": harness.percentile(claims, 0.99),
            f"drain at {backlog:,}": drain_rate(db, done_before)}


def drain_rate(db: str, done_before: int) -> float:
    """Orders per second over the orders the workers finished in this phase (the ones
    finished last, after the ``done_before`` finished earlier)."""
    count, seconds = harness.query(db, """
        WITH phase AS (SELECT started_at, finished_at FROM orders_order WHERE status = 'done'
                        ORDER BY finished_at OFFSET %s)
        SELECT count(*), extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM phase""",
        (done_before,))[0]
    return count / seconds


def check_ran_once(db: str) -> None:
    # One "done" entry in an order's history is one run to completion; released
    # attempts (a worker stopping) never ran the handler and say "released".
    twice = harness.scalar(db, """
        SELECT count(*) FROM orders_order WHERE status = 'done'
           AND jsonb_array_length(jsonb_path_query_array(history, '$[*] ? (@.outcome == "done")')) <> 1""")
    if twice:
        raise BenchError(f"check failed: {twice} orders did not run exactly once")


def prune(pizzaq: Pizzaq, db: str) -> None:
    harness.query(db, """
        UPDATE orders_order SET status = 'done', started_at = now(), finished_at = now()
         WHERE status IN ('queued', 'running')""")
    pizzaq.drive(db, "prune", timeout=3600)
    harness.query(db, "VACUUM orders_order")


def sizes(db: str, moment: str) -> dict:
    table, indexes = harness.query(db, SIZES)[0]
    return {f"table MB, {moment}": table / 2**20, f"indexes MB, {moment}": indexes / 2**20}


def print_backlog_table(figures: dict[str, Series], backlog: int) -> None:
    print(f"\n#### S6 backlog: {BASE:,} vs {backlog:,} queued orders (pizzaq)\n")
    print("| figure | median (min–max) | against the 10,000-order figure |\n|---|---|---|")
    for name, series in figures.items():
        print(f"| {name} | {series.cell()} | {against_base(name, series, figures)} |")
    print(flush=True)


def against_base(name: str, series: Series, figures: dict[str, Series]) -> str:
    if name.startswith("table") or name.startswith("indexes"):
        return ""
    base = figures[name.rsplit(" at ", 1)[0] + f" at {BASE:,}"]
    if base is series or None in (base.median, series.median):
        return "—"
    change = series.median / base.median - 1
    worse = change < -TOLERANCE if series.higher_is_better else change > TOLERANCE
    return f"{change:+.0%} ({'misses' if worse else 'meets'} the 20% target)"
