"""Reads of the queue's state that screens share: the dashboard's snapshot and
`manage.py queuestatus`."""

from collections import Counter

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from orders.models import DEFAULT_QUEUE, Limit, LimitScope, Order, Queue, Status
from workers.models import Event, Worker, WorkerStatus


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
            "concurrency": w.concurrency, "queues": w.queues,
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


def queue_rows(now=None) -> list[dict]:
    """Every queue that has orders waiting or running, is paused, or is named by a live
    worker: its depth, what runs, how many finished in the last minute, whether it is
    paused and by whom, and which live shops serve it."""
    now = now or timezone.now()
    active = Counter()
    for queue, status, n in (Order.objects.in_play()
                             .values_list("queue", "status").annotate(n=Count("id"))):
        active[queue, status] = n
    finished = Counter(dict(Order.objects.filter(status=Status.DONE, finished_at__gte=now - timedelta(minutes=1))
                            .values_list("queue").annotate(n=Count("id"))))
    settings = {queue.name: queue for queue in Queue.objects.all()}
    limits = {limit.name: limit for limit in Limit.objects.filter(scope=LimitScope.QUEUE)}
    live = list(Worker.objects.filter(status=WorkerStatus.ALIVE).values_list("name", "queues"))
    names = {DEFAULT_QUEUE, *settings, *limits, *(queue for queue, _ in active), *(q for _, queues in live for q in queues)}
    rows = []
    for name in sorted(names):
        queue = settings.get(name)
        served_by = [worker for worker, queues in live if not queues or name in queues]
        rows.append({
            "name": name, "queued": active[name, Status.QUEUED], "running": active[name, Status.RUNNING],
            "done_last_minute": finished[name], "paused": bool(queue and queue.is_paused),
            "paused_by": queue.paused_by if queue and queue.is_paused else None,
            "paused_at": iso(queue.paused_at) if queue else None, "served_by": served_by,
            "limit": describe_limit(limits[name]) if name in limits else None,
        })
    return rows


def describe_limit(limit: Limit) -> str:
    """"at most 4 running, 1 per key, 20 starts per 1 s" in a few words."""
    parts = []
    if limit.max_running is not None:
        parts.append(f"at most {limit.max_running} running")
    if limit.max_running_per_key is not None:
        parts.append(f"{limit.max_running_per_key} per key")
    if limit.max_starts is not None:
        parts.append(f"{limit.max_starts} starts per {limit.per_seconds:g} s")
    return ", ".join(parts) or "no limit set"
