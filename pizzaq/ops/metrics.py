"""Prometheus metrics, read from the database at scrape time: workers serve no HTTP, so
any web process can answer for the whole queue.

Counters are what the orders table holds plus what pruning deleted (PrunedTally, written
in the transaction that deletes), so they only go up. "Moved" is summed from the death
events, which are never pruned."""

from django.db.models import Count
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from orders.handlers import registered_kinds
from orders.history import FAILED_OUTCOMES
from orders.models import Order, PrunedTally, Status
from orders.tally import DURATION_BOUNDS, duration_histograms, failures_by_kind_status, merge_counts
from workers import leadership
from workers.models import EventKind, Event, Worker, WorkerStatus

DEATHS = (EventKind.DIED, EventKind.FORCE_FAILED)


class QueueCollector:
    """Everything /metrics shows, gathered fresh on each scrape."""

    def collect(self):
        now = timezone.now()
        yield from order_metrics()
        yield from failover_metrics()
        yield from worker_metrics(now)
        yield from leader_metrics(now)


def exposition() -> bytes:
    """The metrics in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector())
    return generate_latest(registry)


# --- orders ----------------------------------------------------------------------------


def order_totals() -> tuple[dict, dict, dict]:
    """(orders, failures, durations) of live rows plus pruned ones: orders by (kind,
    status), failed attempts by kind then outcome, histograms by kind."""
    orders = _live_counts()
    failures = {}
    for (kind, _), counts in failures_by_kind_status(Order.objects.all()).items():
        failures[kind] = merge_counts(failures.get(kind, {}), counts)
    durations = duration_histograms(Order.objects.all())
    for tally in PrunedTally.objects.all():
        key = (tally.kind, tally.status)
        orders[key] = orders.get(key, 0) + tally.orders
        failures[tally.kind] = merge_counts(failures.get(tally.kind, {}), tally.failures)
        if tally.durations:
            durations[tally.kind] = merge_counts(durations.get(tally.kind, {}), tally.durations)
    return orders, failures, durations


def order_metrics():
    live = GaugeMetricFamily("pizzaq_orders", "Orders in the table now, by status and kind.", labels=["status", "kind"])
    for (kind, status), n in sorted(_live_counts().items()):
        live.add_metric([status, kind], n)
    yield live
    yield queue_depth()
    orders, failures, durations = order_totals()
    kinds = sorted(set(registered_kinds()) | {kind for kind, _ in orders})
    yield _per_kind(CounterMetricFamily("pizzaq_orders_placed", "Orders ever placed, by kind.", labels=["kind"]),
                    kinds, lambda kind: sum(n for (k, _), n in orders.items() if k == kind))
    yield _per_kind(CounterMetricFamily("pizzaq_orders_done", "Orders ever done, by kind.", labels=["kind"]),
                    kinds, lambda kind: orders.get((kind, Status.DONE), 0))
    yield failed_attempts(kinds, failures)
    yield from histograms(durations)


def _live_counts() -> dict:
    return {(kind, status): n for kind, status, n in
            Order.objects.values_list("kind", "status").annotate(n=Count("id")).order_by()}


def queue_depth() -> GaugeMetricFamily:
    depth = GaugeMetricFamily("pizzaq_queue_depth", "Queued orders (due or waiting for their time), by priority.",
                              labels=["priority"])
    queued = Order.objects.filter(status=Status.QUEUED).values_list("priority").annotate(n=Count("id")).order_by()
    for priority, n in sorted(queued):
        depth.add_metric([str(priority)], n)
    return depth


def _per_kind(family, kinds, value):
    for kind in kinds:
        family.add_metric([kind], value(kind))
    return family


def failed_attempts(kinds, failures: dict) -> CounterMetricFamily:
    family = CounterMetricFamily(
        "pizzaq_order_failures",
        "Attempts that failed, by kind and outcome: failed (the handler raised), lapsed (its lease ran out: "
        "a stuck run), closed (a pinned order whose shop closed).",
        labels=["kind", "outcome"],
    )
    for kind in kinds:
        for outcome in FAILED_OUTCOMES:
            family.add_metric([kind, outcome], failures.get(kind, {}).get(outcome, 0))
    return family


def histograms(durations: dict):
    helps = {
        "wait": ("pizzaq_order_start_latency_seconds",
                 "Done orders: seconds from due (placed, or its delay or retry wait over) to claimed and started."),
        "run": ("pizzaq_order_run_seconds", "Done orders: seconds their final attempt ran."),
    }
    for name, (metric, text) in helps.items():
        family = HistogramMetricFamily(metric, text, labels=["kind"])
        for kind, histogram in sorted(durations.items()):
            buckets = [(floatToGoString(bound), n) for bound, n in zip(DURATION_BOUNDS, histogram[name]["buckets"])]
            buckets.append(("+Inf", histogram[name]["count"]))
            family.add_metric([kind], buckets, sum_value=histogram[name]["sum"])
        yield family


# --- failover, workers, the notifier ---------------------------------------------------


def failover_metrics():
    deaths = CounterMetricFamily("pizzaq_worker_deaths", "Workers declared dead, by reason: died (missed "
                                 "heartbeats) or force_failed (by a person).", labels=["reason"])
    moved = CounterMetricFamily("pizzaq_orders_moved", "Orders moved off dead workers, by reason and what they "
                                "were: queued (followed their bucket to its new owner) or running (requeued).",
                                labels=["reason", "was"])
    totals = {reason: {"deaths": 0, "queued": 0, "running": 0} for reason in DEATHS}
    for kind, data in Event.objects.filter(kind__in=DEATHS).values_list("kind", "data"):
        totals[kind]["deaths"] += 1
        totals[kind]["queued"] += sum((data.get("moved") or {}).values())
        totals[kind]["running"] += data.get("requeued") or 0
    for reason, counts in totals.items():
        deaths.add_metric([reason], counts["deaths"])
        moved.add_metric([reason, "queued"], counts["queued"])
        moved.add_metric([reason, "running"], counts["running"])
    yield deaths
    yield moved


def worker_metrics(now):
    by_status = dict(Worker.objects.values_list("status").annotate(n=Count("id")).order_by())
    workers = GaugeMetricFamily("pizzaq_workers", "Workers by status.", labels=["status"])
    for status in WorkerStatus.values:
        workers.add_metric([status], by_status.get(status, 0))
    yield workers
    age = GaugeMetricFamily("pizzaq_worker_heartbeat_age_seconds", "Seconds since each live worker's last "
                            "heartbeat; past PIZZAQ_WORKER_TIMEOUT it is declared dead.", labels=["worker", "host"])
    for worker in Worker.objects.live().order_by("name"):
        age.add_metric([worker.name, worker.host], worker.heartbeat_age(now))
    yield age


def leader_metrics(now):
    lease = leadership.current_leader()
    holder = lease[0] if lease and lease[0] and lease[1] > now else ""
    yield GaugeMetricFamily("pizzaq_notifier_has_leader", "1 while a notifier holds a valid leader lease.",
                            value=1 if holder else 0)
    leader = GaugeMetricFamily("pizzaq_notifier_leader", "1 for the notifier that leads now.", labels=["notifier"])
    if holder:
        leader.add_metric([holder], 1)
    yield leader
