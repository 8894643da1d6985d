"""Bucket ownership: the ring of alive workers decides, the Bucket table remembers.

Only the buckets whose owner changes are written. Every rebalance runs
under one lock, so two of them never interleave.
"""

from collections import Counter, defaultdict

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from orders.models import Order, Status
from orders import conf
from workers.hashring import HashRing
from workers.models import Bucket, Worker, WorkerStatus

# Any fixed number: the advisory lock that serialises membership changes on PostgreSQL.
MEMBERSHIP_LOCK = 0x70697A7A


def lock_membership() -> None:
    """Serialise membership changes until the current transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite: our transactions are
    IMMEDIATE, so holding one already excludes every other writer."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [MEMBERSHIP_LOCK])


def owned_by(name: str):
    """The bucket numbers ``name`` owns, as a subquery a claim can filter on."""
    return Bucket.objects.filter(owner=name).values("number")


def still_alive(worker: Worker):
    """A subquery that finds a row while this incarnation of ``worker`` is alive."""
    return Worker.objects.filter(pk=worker.pk, incarnation=worker.incarnation, status=WorkerStatus.ALIVE)


def _ring() -> HashRing:
    return HashRing(Worker.objects.filter(status=WorkerStatus.ALIVE).values_list("name", flat=True))


def rebalance() -> dict[int, tuple[str, str]]:
    """Make the Bucket table match the ring of alive workers; returns {bucket: (old, new)}.
    Call inside a transaction that holds ``lock_membership()``."""
    ring = _ring()
    if not ring.nodes:
        return {}  # nobody to give buckets to; they wait for the next worker to join
    wanted = ring.assignments(conf.get().buckets)
    current = dict(Bucket.objects.values_list("number", "owner"))
    now = timezone.now()
    Bucket.objects.bulk_create(
        [Bucket(number=b, owner=owner, changed_at=now) for b, owner in wanted.items() if b not in current]
    )
    changes = {b: (current.get(b, ""), owner) for b, owner in wanted.items() if current.get(b) != owner}
    by_new_owner = defaultdict(list)
    for bucket, (old, new) in changes.items():
        if bucket in current:  # rows created just now already carry their owner
            by_new_owner[new].append(bucket)
    for owner, buckets in by_new_owner.items():
        Bucket.objects.filter(number__in=buckets).update(owner=owner, changed_at=now)
    return changes


def queued_orders_following(changes: dict[int, tuple[str, str]]) -> Counter:
    """How many queued orders now belong to each new owner because their bucket moved."""
    counts = (
        Order.objects.filter(status=Status.QUEUED, pinned_to="", bucket__in=list(changes))
        .values("bucket").annotate(n=Count("id")).values_list("bucket", "n")
    )
    moved = Counter()
    for bucket, n in counts:
        moved[changes[bucket][1]] += n
    return moved


def describe_moves(changes: dict[int, tuple[str, str]], orders: Counter) -> str:
    """"12 orders moved (S0: 5, S1: 7); buckets 17, 40, ... moved" in a few words."""
    per_owner = ", ".join(f"{owner}: {n}" for owner, n in sorted(orders.items()))
    buckets = sorted(changes)
    shown = ", ".join(map(str, buckets[:8])) + (", ..." if len(buckets) > 8 else "")
    text = f"{sum(orders.values())} orders moved" + (f" ({per_owner})" if per_owner else "")
    return text + (f"; {len(buckets)} buckets moved ({shown})" if buckets else "; no buckets moved")
