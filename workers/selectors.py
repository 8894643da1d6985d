"""Reads of the queue's state that screens share: the dashboard's snapshot and
`manage.py queuestatus`."""

from collections import Counter

from django.db.models import Count

from orders.models import Order, Status
from workers.models import Event, Worker


def iso(moment):
    return moment.isoformat() if moment else None


def queue_summary() -> dict:
    """Orders by status, and the queued ones by priority."""
    by_status = dict(Order.objects.values_list("status").annotate(n=Count("id")))
    by_priority = (
        Order.objects.filter(status=Status.QUEUED).values_list("priority").annotate(n=Count("id")).order_by("-priority")
    )
    return {
        "by_status": {status: by_status.get(status, 0) for status in Status.values},
        "queued_by_priority": [[priority, n] for priority, n in by_priority],
    }


def worker_rows(now, owners: dict[int, str]) -> list[dict]:
    """Every worker with its heartbeat age and what it runs, holds queued and owns;
    ``owners``: each bucket's owner."""
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


def recent_events(limit: int) -> list[dict]:
    return [
        {"at": iso(e.created_at), "kind": e.kind, "worker": e.worker, "actor": e.actor, "message": e.message}
        for e in Event.objects.order_by("-created_at", "-id")[:limit]
    ]
