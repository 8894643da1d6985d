"""Cluster-wide limits on a queue's or a kind's orders, enforced in the claim.

Orders some limit covers are never taken by the ordinary claim: its pick leaves them out.
They are claimed by ``Claim`` here, one worker at a time: under a lock, the claim counts
what runs now (in all and per concurrency key) and what started within each rate limit's
period, and takes only what fits. Two workers can so never together pass a limit. A
worker's orders stop counting as soon as they are no longer running (done, failed, or
requeued when it died); orders over a limit stay queued, without using a try.
"""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q
from django.utils import timezone

from orders.locks import hold_until_commit
from orders.models import Limit, LimitScope, LimitStart, Order, Status

# Any fixed number: the advisory lock that serialises limited claims on PostgreSQL.
LIMITS_LOCK = 0x70697A7B


def covered() -> Q:
    """Orders some limit covers, as a filter the claims compose."""
    return (Q(kind__in=Limit.objects.filter(scope=LimitScope.KIND).values("name"))
            | Q(queue__in=Limit.objects.filter(scope=LimitScope.QUEUE).values("name")))


def claim_limited(candidates, free: int, take) -> list[Order]:
    """Up to ``free`` of the limited orders among ``candidates(now, full)`` (this worker's
    next ready ones, in claim order, but for those ``full`` selects: the groups at their
    limit) that fit every limit covering them; ``take(ids, now)``
    claims them. One limited claim at a time in the whole cluster; its time is read once
    the counts are in, so claims follow one another in time as they do in fact."""
    now_limits = list(Limit.objects.all())
    if free < 1 or not now_limits:
        return []
    with transaction.atomic():
        hold_until_commit(LIMITS_LOCK)
        room = _Room(now_limits)
        if room.all_full:
            return []  # nothing could start: no need to look through the queue
        full = Q(kind__in=room.full_kinds) | Q(queue__in=room.full_queues)
        rows = candidates(room.now, full).values_list("id", "kind", "queue", "concurrency_key")
        chosen = [order_id for order_id, kind, queue, key in rows
                  if room.covers(kind, queue) and len(room.taken) < free and room.take(kind, queue, key)]
        if not chosen:
            return []
        orders = take(chosen, room.now)
        room.record_starts(orders)
        return orders


class _Room:
    """What each limit has room for now, taken down as orders are chosen."""

    def __init__(self, limits: list[Limit]):
        counted_at = timezone.now()
        self.limits = {(limit.scope, limit.name): limit for limit in limits}
        # The names written out, not read by subquery: the plan then walks the running
        # orders' index, a few rows, rather than the whole table.
        kinds = [name for scope, name in self.limits if scope == LimitScope.KIND]
        queues = [name for scope, name in self.limits if scope == LimitScope.QUEUE]
        running = (Order.objects.filter(status=Status.RUNNING).filter(Q(kind__in=kinds) | Q(queue__in=queues))
                   .values_list("kind", "queue", "concurrency_key").annotate(n=Count("id")))
        self.running = Counter()
        for kind, queue, key, n in running:
            for group in self._groups(kind, queue):
                self.running[group] += n
                if key:
                    self.running[group + (key,)] += n
        self.started = Counter()
        for limit in limits:
            if limit.max_starts is not None:
                since = counted_at - timedelta(seconds=limit.per_seconds)
                self.started[limit.scope, limit.name] = limit.starts.filter(at__gt=since).count()
        # The claim's time, read once the counts are in: every run they saw end had ended
        # by then, and every run that starts after them starts later (it waits for this
        # lock). (The windows counted from a little earlier: if anything, too strict.)
        self.now = timezone.now()
        self.taken = []
        full = [group for group in self.limits if not self._fits(group, "")]
        self.full_kinds = [name for scope, name in full if scope == LimitScope.KIND]
        self.full_queues = [name for scope, name in full if scope == LimitScope.QUEUE]
        self.all_full = len(full) == len(self.limits)

    def _groups(self, kind: str, queue: str) -> list[tuple[str, str]]:
        return [group for group in ((LimitScope.KIND, kind), (LimitScope.QUEUE, queue)) if group in self.limits]

    def _fits(self, group: tuple[str, str], key: str) -> bool:
        limit = self.limits[group]
        if limit.max_running is not None and self.running[group] >= limit.max_running:
            return False
        if key and limit.max_running_per_key is not None and self.running[group + (key,)] >= limit.max_running_per_key:
            return False
        return limit.max_starts is None or self.started[group] < limit.max_starts

    def covers(self, kind: str, queue: str) -> bool:
        return bool(self._groups(kind, queue))

    def take(self, kind: str, queue: str, key: str) -> bool:
        """Whether an order of this kind, queue and key fits every limit; if so, count it."""
        groups = self._groups(kind, queue)
        if not all(self._fits(group, key) for group in groups):
            return False
        for group in groups:
            self.running[group] += 1
            self.started[group] += 1
            if key:
                self.running[group + (key,)] += 1
        self.taken.append((kind, queue))
        return True

    def record_starts(self, orders: list[Order]) -> None:
        """Each order started under a rate limit counts in its window; older starts go."""
        starts = [LimitStart(limit=self.limits[group], at=self.now)
                  for order in orders for group in self._groups(order.kind, order.queue)
                  if self.limits[group].max_starts is not None]
        LimitStart.objects.bulk_create(starts)
        for limit in {start.limit for start in starts}:
            limit.starts.filter(at__lte=self.now - timedelta(seconds=limit.per_seconds)).delete()


def sync_from_settings() -> None:
    """Make the limits PIZZAQ_LIMITS lists the rows marked ``from_settings``: a starting
    worker calls it, so a deployment's settings take effect cluster-wide."""
    wanted = configured()
    with transaction.atomic():
        for (scope, name), fields in wanted.items():
            Limit.objects.update_or_create(scope=scope, name=name, defaults={**fields, "from_settings": True})
        stale = Limit.objects.filter(from_settings=True)
        for scope, name in wanted:
            stale = stale.exclude(scope=scope, name=name)
        stale.delete()


_NUMBERS = ("max_running", "max_running_per_key", "max_starts", "per_seconds")


def configured() -> dict[tuple[str, str], dict]:
    """The limits PIZZAQ_LIMITS sets, by (scope, name); ImproperlyConfigured if one is wrong."""
    entries = getattr(settings, "PIZZAQ_LIMITS", [])
    if not isinstance(entries, (list, tuple)):
        raise ImproperlyConfigured("PIZZAQ_LIMITS must be a list of dicts")
    return dict(_checked(entry) for entry in entries)


def _checked(entry) -> tuple[tuple[str, str], dict]:
    """One PIZZAQ_LIMITS entry, e.g. {"kind": "email", "max_running": 2, "max_starts": 20,
    "per_seconds": 1}, as ((scope, name), numbers); ImproperlyConfigured if it is wrong."""
    def wrong(why: str):
        return ImproperlyConfigured(f"PIZZAQ_LIMITS entry {entry!r}: {why}")

    if not isinstance(entry, dict):
        raise wrong("must be a dict")
    scopes = [scope for scope in LimitScope.values if scope in entry]
    if len(scopes) != 1 or not isinstance(entry[scopes[0]], str):
        raise wrong('name exactly one "kind" or "queue"')
    if unknown := sorted(set(entry) - {scopes[0], *_NUMBERS}):
        raise wrong(f"unknown key(s) {', '.join(unknown)}")
    numbers = {field: entry.get(field) for field in _NUMBERS}
    for field, value in numbers.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
                                  or (field != "per_seconds" and not isinstance(value, int))):
            raise wrong(f"{field} must be a positive {'number' if field == 'per_seconds' else 'integer'}")
    if (numbers["max_starts"] is None) != (numbers["per_seconds"] is None):
        raise wrong("max_starts and per_seconds go together")
    return (scopes[0], entry[scopes[0]]), numbers
