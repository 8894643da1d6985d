"""The headline table of RESULTS.md, from the JSON of the last run (bench/results/s1-s5.json,
S3 from s3-20000.json, the issue's size, when there is one):
one row per figure, one column per queue, each cell the median (min–max) and, for a
peer, pizzaq's ratio to it (above 1× means pizzaq does better).

    bench/.venv-peers/bin/python -m bench.summary
"""

import json

from bench.harness import RESULTS, fmt

QUEUES = ["pizzaq", "procrastinate", "pgqueuer", "oban", "django-tasks-db", "celery"]
CLAIMED = "place → claimed"
# (scenario, figure, group, row title, whether pizzaq's row is its place → claimed one)
ROWS = [
    ("s1", "enqueue", "one call per order", "S1 enqueue, one call per order (orders/s)", False),
    ("s1", "enqueue", "HTTP API", "S1 enqueue over HTTP, manage.py serve (orders/s)", False),
    ("s2", "bulk", "batch API, calls of 10", "S2 bulk enqueue, calls of 10 (orders/s)", False),
    ("s2", "bulk", "batch API, calls of 100", "S2 bulk enqueue, calls of 100 (orders/s)", False),
    ("s2", "bulk", "batch API, calls of 1,000", "S2 bulk enqueue, calls of 1,000 (orders/s)", False),
    ("s2", "bulk", "batch API", "S2 bulk enqueue, one call of all (orders/s)", False),
    ("s3-20000", "drain", "1 worker, defaults", "S3 drain of 20,000, 1 worker on defaults (orders/s)", False),
    ("s3-20000", "drain", "2 workers, tuned", "S3 drain of 20,000, 2 workers tuned (orders/s)", False),
    ("s4", "p50", "idle worker", "S4 place → start p50 (ms); pizzaq: handler start", False),
    ("s4", "p50", "idle worker", "S4 place → start p50 (ms); pizzaq: claimed", True),
    ("s4", "p99", "idle worker", "S4 place → start p99 (ms); pizzaq: handler start", False),
    ("s4", "p99", "idle worker", "S4 place → start p99 (ms); pizzaq: claimed", True),
    ("s5", "recovery", "kill -9", "S5 kill -9 → job runs again (s)", False),
]


def load(name: str) -> dict:
    """results/NAME.json; for S3 at the issue's size (s3-20000), the default size's file
    when that size was not run."""
    path = RESULTS / f"{name}.json"
    if not path.exists() and name.startswith("s3-"):
        path = RESULTS / "s3.json"
    return json.loads(path.read_text()) if path.exists() else {}


def queue_of(label: str) -> str:
    return next(q for q in QUEUES if label.startswith(q))


def cells(rows: list[dict], claimed: bool) -> dict[str, str]:
    """Each queue's cell; pizzaq's row (its place → claimed one, or the other) is the
    base of the ratios."""
    by_queue = {}
    for row in rows:
        if queue_of(row["label"]) == "pizzaq" and row["label"].endswith(CLAIMED) != claimed:
            continue
        by_queue.setdefault(queue_of(row["label"]), row)
    base = by_queue.get("pizzaq")
    return {queue: cell(row, base) for queue, row in by_queue.items()}


def cell(row: dict, base: dict | None) -> str:
    if row["median"] is None:
        return "; ".join(row["notes"]) or "n/a"
    text = f"{fmt(row['median'])} ({fmt(row['min'])}–{fmt(row['max'])})"
    if base is None or base is row or base["median"] is None:
        return text
    lower_is_better = row["unit"] in ("ms", "s")
    ratio = row["median"] / base["median"] if lower_is_better else base["median"] / row["median"]
    return f"{text}; pizzaq {ratio:.2f}×"


def main() -> None:
    print("| figure | " + " | ".join(QUEUES) + " |\n|---|" + "---|" * len(QUEUES))
    for scenario, figure, group, title, claimed in ROWS:
        table = load(scenario).get("tables", {}).get(figure, [])
        row_cells = cells([row for row in table if row["group"] == group], claimed)
        if row_cells:
            print(f"| {title} | " + " | ".join(row_cells.get(q, "—") for q in QUEUES) + " |")


if __name__ == "__main__":
    main()
