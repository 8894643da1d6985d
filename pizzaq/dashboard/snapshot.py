"""Selectors: everything the dashboard shows, read in one go. Reads only; no writes."""

from collections import Counter
from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.urls import reverse
from django.utils import timezone

from orders.handlers import registered_kinds
from orders.models import Order, Status
from pizzaq import conf
from workers.models import Bucket, Event, QueueSample, Worker

WINDOW = timedelta(minutes=15)
RECENT_ORDERS = 50
RECENT_EVENTS = 40
DEAD_LETTERS = 25


def _iso(moment):
    return moment.isoformat() if moment else None


def order_row(order: Order) -> dict:
    return {
        "id": str(order.id), "url": reverse("dashboard-order", args=[order.id]), "kind": order.kind,
        "status": order.status, "priority": order.priority, "worker": order.worker,
        "attempt": order.attempt, "error": order.last_error.strip().splitlines()[-1] if order.last_error else "",
        "created_at": _iso(order.created_at), "finished_at": _iso(order.finished_at),
    }


def summary() -> dict:
    by_status = dict(Order.objects.values_list("status").annotate(n=Count("id")))
    by_priority = (
        Order.objects.filter(status=Status.QUEUED).values_list("priority").annotate(n=Count("id")).order_by("-priority")
    )
    return {
        "by_status": {status: by_status.get(status, 0) for status in Status.values},
        "queued_by_priority": [[priority, n] for priority, n in by_priority],
    }


def charts(now) -> dict:
    since = now - WINDOW
    depth = QueueSample.objects.filter(taken_at__gte=since).values_list("taken_at", "queued")
    done = (
        Order.objects.filter(status=Status.DONE, finished_at__gte=since)
        .annotate(minute=TruncMinute("finished_at")).values_list("minute").annotate(n=Count("id")).order_by("minute")
    )
    return {
        "since": _iso(since), "now": _iso(now),
        "queue_depth": [[_iso(at), queued] for at, queued in depth],
        "done_per_minute": [[_iso(minute), n] for minute, n in done],
    }


def workers(now, owners: dict[int, str]) -> list[dict]:
    running = Counter(dict(Order.objects.filter(status=Status.RUNNING).values_list("worker").annotate(n=Count("id"))))
    done = Counter(dict(Order.objects.filter(status=Status.DONE).values_list("worker").annotate(n=Count("id"))))
    queued_by_bucket = Order.objects.filter(status=Status.QUEUED, pinned_to="").values_list("bucket").annotate(n=Count("id"))
    queued = Counter(dict(
        Order.objects.filter(status=Status.QUEUED).exclude(pinned_to="").values_list("pinned_to").annotate(n=Count("id"))
    ))
    for bucket, n in queued_by_bucket:
        queued[owners.get(bucket, "")] += n
    buckets = Counter(owners.values())
    return [
        {
            "name": w.name, "status": w.status, "incarnation": w.incarnation, "host": w.host, "pid": w.pid,
            "concurrency": w.concurrency,
            "heartbeat_age": round(w.heartbeat_age(now), 1), "running": running[w.name],
            "queued": queued[w.name], "buckets": buckets[w.name], "done": done[w.name],
        }
        for w in Worker.objects.order_by("name")
    ]


def ring(owners: dict[int, str]) -> dict:
    """Owners as indexes into a name list: 1,024 buckets stay a few kilobytes."""
    names = sorted({owner for owner in owners.values() if owner})
    index = {name: i for i, name in enumerate(names)}
    return {"owners": names, "buckets": [index.get(owners.get(b, ""), -1) for b in range(conf.get().buckets)]}


def events() -> list[dict]:
    return [
        {"at": _iso(e.created_at), "kind": e.kind, "worker": e.worker, "actor": e.actor, "message": e.message}
        for e in Event.objects.order_by("-created_at", "-id")[:RECENT_EVENTS]
    ]


def recent_orders(status: str = "", kind: str = "") -> list[dict]:
    orders = Order.objects.order_by("-id")
    if status in Status.values:
        orders = orders.filter(status=status)
    if kind:
        orders = orders.filter(kind=kind)
    return [order_row(order) for order in orders[:RECENT_ORDERS]]


def dead_letters() -> list[dict]:
    return [order_row(order) for order in Order.objects.filter(status=Status.DEAD).order_by("-finished_at")[:DEAD_LETTERS]]


def snapshot(status: str = "", kind: str = "") -> dict:
    """The whole dashboard as JSON-ready data; ``status`` and ``kind`` filter recent orders."""
    now = timezone.now()
    owners = dict(Bucket.objects.values_list("number", "owner"))
    return {
        "at": _iso(now), "summary": summary(), "charts": charts(now), "workers": workers(now, owners),
        "ring": ring(owners), "events": events(), "orders": recent_orders(status, kind),
        "dead": dead_letters(), "kinds": registered_kinds(),
    }
