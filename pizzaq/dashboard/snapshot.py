"""Selectors: everything the dashboard shows, read in one go. Reads only; no writes."""

from datetime import timedelta

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.urls import reverse
from django.utils import timezone

from orders.handlers import registered_kinds
from orders.models import Order, Schedule, Status
from orders.presenting import order_summary, schedule_summary
from orders import conf
from workers.models import Bucket, QueueSample
from workers.selectors import iso, queue_rows, queue_summary, recent_events, worker_rows

WINDOW = timedelta(minutes=15)
RECENT_ORDERS = 50
RECENT_EVENTS = 40
DEAD_LETTERS = 25


def order_row(order: Order) -> dict:
    """An order's summary with the dashboard's links: its page and its buttons."""
    return {
        **order_summary(order), "url": reverse("dashboard-order", args=[order.id]),
        "retry_url": reverse("dashboard-retry", args=[order.id]), "cancel_url": reverse("dashboard-cancel", args=[order.id]),
    }


def charts(now) -> dict:
    since = now - WINDOW
    depth = QueueSample.objects.filter(taken_at__gte=since).values_list("taken_at", "queued")
    done = (
        Order.objects.filter(status=Status.DONE, finished_at__gte=since)
        .annotate(minute=TruncMinute("finished_at")).values_list("minute").annotate(n=Count("id")).order_by("minute")
    )
    return {
        "since": iso(since), "now": iso(now),
        "queue_depth": [[iso(at), queued] for at, queued in depth],
        "done_per_minute": [[iso(minute), n] for minute, n in done],
    }


def with_fail_urls(workers: list[dict]) -> list[dict]:
    """Each worker row with the address of its Force-fail button."""
    return [{**row, "fail_url": reverse("dashboard-fail-worker", args=[row["name"]])} for row in workers]


def with_queue_urls(queues: list[dict]) -> list[dict]:
    """Each queue row with the addresses of its Pause and Resume buttons."""
    return [{**row, "pause_url": reverse("dashboard-queue-pause", args=[row["name"]]),
             "resume_url": reverse("dashboard-queue-resume", args=[row["name"]])} for row in queues]


def schedule_rows() -> list[dict]:
    """Each schedule with the addresses of its last order and its buttons."""
    return [{**(row := schedule_summary(schedule)),
             "last_order_url": reverse("dashboard-order", args=[row["last_order_id"]]) if row["last_order_id"] else None,
             **{f"{action}_url": reverse(f"dashboard-schedule-{action}", args=[schedule.name])
                for action in ("fire", "enable", "disable")}}
            for schedule in Schedule.objects.all()]


def ring(owners: dict[int, str]) -> dict:
    """Owners as indexes into a name list: 1,024 buckets stay a few kilobytes."""
    names = sorted({owner for owner in owners.values() if owner})
    index = {name: i for i, name in enumerate(names)}
    return {"owners": names, "buckets": [index.get(owners.get(b, ""), -1) for b in range(conf.get().buckets)]}


def recent_orders(status: str = "", kind: str = "", queue: str = "") -> list[dict]:
    orders = Order.objects.order_by("-id")
    if queue:
        orders = orders.filter(queue=queue)
    if status in Status.values:
        orders = orders.filter(status=status)
    if kind:
        orders = orders.filter(kind=kind)
    return [order_row(order) for order in orders[:RECENT_ORDERS]]


def dead_letters() -> list[dict]:
    return [order_row(order) for order in Order.objects.filter(status=Status.DEAD).order_by("-finished_at")[:DEAD_LETTERS]]


def snapshot(status: str = "", kind: str = "", queue: str = "") -> dict:
    """The whole dashboard as JSON-ready data; ``status``, ``kind`` and ``queue`` filter
    recent orders."""
    now = timezone.now()
    owners = Bucket.objects.owners()
    return {
        "at": iso(now), "summary": queue_summary(), "charts": charts(now), "workers": with_fail_urls(worker_rows(now, owners)),
        "queues": with_queue_urls(queue_rows(now)), "schedules": schedule_rows(),
        "ring": ring(owners), "events": recent_events(RECENT_EVENTS), "orders": recent_orders(status, kind, queue),
        "dead": dead_letters(), "kinds": registered_kinds(),
    }
