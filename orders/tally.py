"""Totals that survive pruning: failed attempts and duration histograms read from order
rows, and the PrunedTally that keeps them once the rows are gone."""

from datetime import timedelta

from django.db import models
from django.db.models import F, Q

from orders.history import FAILED_OUTCOMES
from orders.models import PrunedTally, Status

# Upper bounds, in seconds, of the start-latency and run-time histograms. The pruned tally
# keeps counts per bound, so changing them means resetting the tally.
DURATION_BOUNDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


def record_pruned(orders: models.QuerySet) -> None:
    """Count ``orders`` into the tally; call in the transaction that deletes them."""
    failures = failures_by_kind_status(orders)
    durations = duration_histograms(orders)
    for kind, status, n in orders.values_list("kind", "status").annotate(n=models.Count("id")).order_by():
        tally, _ = PrunedTally.objects.select_for_update().get_or_create(kind=kind, status=status)
        tally.orders += n
        tally.failures = merge_counts(tally.failures, failures.get((kind, status), {}))
        if status == Status.DONE:
            tally.durations = merge_counts(tally.durations, durations.get(kind, {}))
        tally.save()


def merge_counts(first, second):
    """Add two nested structures of counts (dicts, lists, numbers) of the same shape."""
    if isinstance(first, dict) or isinstance(second, dict):
        first, second = first or {}, second or {}
        return {key: merge_counts(first.get(key), second.get(key)) for key in first.keys() | second.keys()}
    if isinstance(first, list) or isinstance(second, list):
        first, second = first or [0] * len(second), second or [0] * len(first)
        return [a + b for a, b in zip(first, second)]
    return (first or 0) + (second or 0)


def failures_by_kind_status(orders: models.QuerySet) -> dict:
    """{(kind, status): {outcome: failed attempts}} from the orders' histories."""
    counts: dict = {}
    # Every failed attempt also sets last_error, which nothing clears: orders without
    # one have no failure to count, and most orders are skipped without reading history.
    for kind, status, history in orders.exclude(last_error="").values_list("kind", "status", "history").iterator():
        for entry in history:
            if entry.get("outcome") in FAILED_OUTCOMES:
                by_outcome = counts.setdefault((kind, status), {})
                by_outcome[entry["outcome"]] = by_outcome.get(entry["outcome"], 0) + 1
    return counts


def duration_histograms(orders: models.QuerySet) -> dict:
    """{kind: {"run": histogram, "wait": histogram}} of done orders' final attempts:
    run is start to finish, wait is from due (placed, or its delay or retry over) to
    claimed. A histogram is {"buckets": [count <= bound for DURATION_BOUNDS], "count", "sum"}."""
    spans = {"run": F("finished_at") - F("started_at"), "wait": F("started_at") - F("run_after")}
    done = orders.filter(status=Status.DONE, started_at__isnull=False, finished_at__isnull=False).annotate(
        **{name: models.ExpressionWrapper(span, output_field=models.DurationField()) for name, span in spans.items()}
    )
    aggregates = {"count": models.Count("id")}
    for name in spans:
        aggregates[f"{name}_sum"] = models.Sum(name)
        for i, bound in enumerate(DURATION_BOUNDS):
            aggregates[f"{name}_{i}"] = models.Count("id", filter=Q(**{f"{name}__lte": timedelta(seconds=bound)}))
    return {row["kind"]: _histograms(row, spans) for row in done.values("kind").annotate(**aggregates).order_by()}


def _histograms(row: dict, names) -> dict:
    return {
        name: {
            "buckets": [row[f"{name}_{i}"] for i in range(len(DURATION_BOUNDS))],
            "count": row["count"],
            "sum": row[f"{name}_sum"].total_seconds() if row[f"{name}_sum"] else 0.0,
        }
        for name in names
    }
