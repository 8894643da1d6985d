"""Bucket ownership: the rings of alive workers decide, the Bucket table remembers.

Every queue a live worker names in its --queues has a ring of the workers that serve it;
all other queues share the ring of the workers that serve every queue. Only the buckets
whose owner changes are written, and with them each worker's copy of its share of the
every-queue rows (``Worker.territory``), which is what a claim reads. Every rebalance runs
under one lock, so two of them never interleave.
"""

from collections import Counter, defaultdict

from django.db.models import BinaryField, Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Substr
from django.db.models.lookups import Exact
from django.utils import timezone

from orders.locks import hold_until_commit
from orders.models import Order, Status
from orders import conf
from workers.hashring import HashRing
from workers.models import Bucket, Worker, WorkerStatus

# Any fixed number: the advisory lock that serialises membership changes on PostgreSQL.
MEMBERSHIP_LOCK = 0x70697A7A
# A territory's byte for a bucket its worker owns (any other byte: not owned).
OWNED = b"\x01"


def lock_membership() -> None:
    """Serialise membership changes until the current transaction ends."""
    hold_until_commit(MEMBERSHIP_LOCK)


def named_queues():
    """The queues some live worker names, as a subquery. Each has a row for every bucket
    number, so bucket 0 lists them once."""
    return Bucket.objects.filter(number=0).exclude(queue=Bucket.OTHER_QUEUES).values("queue")


def territory(name: str) -> Q:
    """The unpinned orders ``name`` may claim, as a filter a claim composes: those whose
    bucket it owns in their queue's rows. An order of a queue some live worker names uses
    that queue's rows; any other order uses the rows of ``Bucket.OTHER_QUEUES``, through
    the worker's ``territory`` (its copy of them: one look-up per claim, one byte per order)."""
    named = named_queues()
    mine = Subquery(Worker.objects.filter(name=name).values("territory"))
    in_mine = Exact(Substr(mine, F("bucket") + 1, 1, output_field=BinaryField()), Value(OWNED, BinaryField()))
    # The owner of a named queue's order's bucket, looked up for that order alone (one
    # probe of the (number, queue) index): a set of this worker's buckets in every named
    # queue, as for the other queues, would be rebuilt on every claim.
    owner = Subquery(Bucket.objects.filter(number=OuterRef("bucket"), queue=OuterRef("queue")).values("owner")[:1])
    return Q(in_mine, ~Q(queue__in=named)) | Q(Q(queue__in=named), Exact(owner, name))


def territories(owners: dict[int, str], count: int) -> dict[str, bytes]:
    """Each owner's ``Worker.territory``, given {bucket number: owner} of the every-queue
    rows and the number of buckets."""
    marks = defaultdict(lambda: bytearray(count))
    for number, owner in owners.items():
        if owner and number < count:
            marks[owner][number] = OWNED[0]
    return {owner: bytes(mark) for owner, mark in marks.items()}


def write_territories() -> None:
    """Copy the every-queue Bucket rows into each worker's ``territory``; a worker that
    owns none of them gets an empty one. Part of every rebalance, in its transaction."""
    marks = territories(Bucket.objects.owners(Bucket.OTHER_QUEUES), conf.get().buckets)
    for name, current in Worker.objects.values_list("name", "territory"):
        wanted = marks.get(name, b"")
        if bytes(current) != wanted:
            Worker.objects.filter(name=name).update(territory=wanted)


def still_alive(worker: Worker):
    """A subquery that finds a row while this incarnation of ``worker`` is alive."""
    return Worker.objects.filter(pk=worker.pk, incarnation=worker.incarnation, status=WorkerStatus.ALIVE)


def rings() -> dict[str, HashRing]:
    """The ring of each queue's rows: the workers serving every queue for
    ``Bucket.OTHER_QUEUES``; for each queue a live worker names, the workers serving it."""
    alive = list(Worker.objects.filter(status=WorkerStatus.ALIVE).values_list("name", "queues"))
    named = sorted({queue for _, queues in alive for queue in queues})
    every = [name for name, queues in alive if not queues]
    return {Bucket.OTHER_QUEUES: HashRing(every),
            **{queue: HashRing(every + [name for name, queues in alive if queue in queues]) for queue in named}}


def rebalance() -> dict[tuple[str, int], tuple[str, str]]:
    """Make the Bucket table match the rings of alive workers; returns
    {(queue, bucket): (old owner, new owner)}. A bucket whose ring is empty has no owner:
    its orders wait. Call inside a transaction that holds ``lock_membership()``."""
    wanted_rings = rings()
    if not any(ring.nodes for ring in wanted_rings.values()):
        return {}  # nobody to give buckets to; they wait for the next worker to join
    count = conf.get().buckets
    wanted = {(queue, number): owner or ""
              for queue, ring in wanted_rings.items() for number, owner in ring.assignments(count).items()}
    current = {(queue, number): owner for queue, number, owner in Bucket.objects.values_list("queue", "number", "owner")}
    now = timezone.now()
    # Rows of queues no live worker names any more: their orders follow OTHER_QUEUES now.
    Bucket.objects.exclude(queue__in=list(wanted_rings)).delete()
    Bucket.objects.filter(number__gte=count).delete()
    Bucket.objects.bulk_create([Bucket(queue=queue, number=number, owner=owner, changed_at=now)
                                for (queue, number), owner in wanted.items() if (queue, number) not in current])
    changes = {key: (current.get(key, ""), owner) for key, owner in wanted.items() if current.get(key, "") != owner}
    by_new_owner = defaultdict(list)
    for (queue, number), (_, new) in changes.items():
        if (queue, number) in current:  # rows created just now already carry their owner
            by_new_owner[queue, new].append(number)
    for (queue, owner), numbers in by_new_owner.items():
        Bucket.objects.filter(queue=queue, number__in=numbers).update(owner=owner, changed_at=now)
    write_territories()
    return changes


def queued_orders_following(changes: dict[tuple[str, int], tuple[str, str]]) -> Counter:
    """How many queued orders now belong to each new owner because their bucket moved."""
    named = set(named_queues().values_list("queue", flat=True))
    new_owner = {key: new for key, (_, new) in changes.items()}
    moved = Counter()
    for queue, numbers in moved_buckets(changes).items():
        orders = Order.objects.filter(status=Status.QUEUED, pinned_to="", bucket__in=numbers)
        orders = orders.exclude(queue__in=named) if queue == Bucket.OTHER_QUEUES else orders.filter(queue=queue)
        for bucket, n in orders.values("bucket").annotate(n=Count("id")).values_list("bucket", "n"):
            if owner := new_owner[queue, bucket]:
                moved[owner] += n
    return moved


def moved_buckets(changes: dict[tuple[str, int], tuple[str, str]]) -> dict[str, list[int]]:
    """The bucket numbers that changed owner, per queue ("" for every other queue)."""
    by_queue = defaultdict(list)
    for queue, number in sorted(changes):
        by_queue[queue].append(number)
    return dict(by_queue)


def describe_moves(changes: dict[tuple[str, int], tuple[str, str]], orders: Counter) -> str:
    """"12 orders moved (S0: 5, S1: 7); buckets 17, 40, ... moved" in a few words."""
    per_owner = ", ".join(f"{owner}: {n}" for owner, n in sorted(orders.items()))
    text = f"{sum(orders.values())} orders moved" + (f" ({per_owner})" if per_owner else "")
    if not changes:
        return text + "; no buckets moved"
    parts = []
    for queue, numbers in moved_buckets(changes).items():
        shown = ", ".join(map(str, numbers[:8])) + (", ..." if len(numbers) > 8 else "")
        parts.append(f"{len(numbers)} buckets{f' of queue {queue}' if queue else ''} moved ({shown})")
    return text + "; " + "; ".join(parts)
