"""Who makes the orders: worker processes, bucket ownership and the audit trail."""

from django.db import models
from django.utils import timezone


class WorkerStatus(models.TextChoices):
    # Registered and heartbeating; claims orders in the buckets it owns.
    ALIVE = "alive"
    # Received a stop signal: finishing what it runs, claiming nothing new.
    STOPPING = "stopping"
    # Stopped cleanly and deregistered.
    LEFT = "left"
    # Missed its heartbeats, or was force-failed: its orders were moved.
    DEAD = "dead"


LIVE = (WorkerStatus.ALIVE, WorkerStatus.STOPPING)


class WorkerQuerySet(models.QuerySet):
    def live(self):
        return self.filter(status__in=LIVE)


class Worker(models.Model):
    name = models.CharField(max_length=100, unique=True)
    # Bumped on every registration under this name; with the name it identifies one
    # process, so a fenced-off predecessor cannot heartbeat for its successor.
    incarnation = models.IntegerField(default=0)
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    concurrency = models.IntegerField(default=1)
    # The queues it serves (runworker --queues); empty: every queue.
    queues = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=WorkerStatus.choices, default=WorkerStatus.ALIVE)
    started_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # The buckets it owns among the rows of every queue no live worker names, one byte per
    # bucket number (1: owned): a copy of its Bucket rows, written with them, that a claim
    # reads in one look-up and tests per order. Reading the rows themselves cost every
    # claim a pass over its share of them (two thirds of a one-order claim at 1,024).
    territory = models.BinaryField(default=bytes, editable=False)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=WorkerStatus.values), name="worker_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE

    def serves(self, queue: str) -> bool:
        return not self.queues or queue in self.queues

    def heartbeat_age(self, now=None) -> float:
        return ((now or timezone.now()) - self.last_heartbeat).total_seconds()


class EventKind(models.TextChoices):
    JOINED = "joined"
    LEFT = "left"
    DIED = "died"
    FORCE_FAILED = "force_failed"
    REASSIGNED = "reassigned"
    LEADER = "leader"
    ACTION = "action"


class Event(models.Model):
    """One membership change or one action a person took, written in the same
    transaction as the change itself."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    worker = models.CharField(max_length=100, blank=True, default="")
    actor = models.CharField(max_length=150, blank=True, default="", help_text="Who did it")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.message


class BucketQuerySet(models.QuerySet):
    def owners(self, queue: str = "") -> dict[int, str]:
        """{bucket number: owner} of one queue's rows ("": every queue no live worker names)."""
        return dict(self.filter(queue=queue).values_list("number", "owner"))


class Bucket(models.Model):
    """Which live worker owns a bucket of orders, per queue. Workers claim only in their
    buckets. ``queue`` is a queue that some live worker names in its --queues (owned by
    the ring of the workers that serve it), or "" for every other queue (owned by the ring
    of the workers that serve all queues)."""

    OTHER_QUEUES = ""

    queue = models.CharField(max_length=100, blank=True, default=OTHER_QUEUES)
    number = models.IntegerField()
    owner = models.CharField(max_length=100, blank=True, default="")
    # When the owner last changed.
    changed_at = models.DateTimeField(default=timezone.now)

    objects = BucketQuerySet.as_manager()

    class Meta:
        ordering = ["queue", "number"]
        constraints = [models.UniqueConstraint(fields=["number", "queue"], name="bucket_number_queue")]

    def __str__(self):
        return f"bucket {self.number}{f' of {self.queue}' if self.queue else ''} -> {self.owner or 'nobody'}"


class NotifierLease(models.Model):
    """The single row that says which notifier leads, until when. Works on every database."""

    id = models.IntegerField(primary_key=True, default=1)
    holder = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.holder or 'nobody'} until {self.expires_at:%H:%M:%S}"


class QueueSample(models.Model):
    """The queue's size every few seconds, taken by the notifier, for the dashboard's charts.
    (Rebuilding past depths from order rows would mean scanning the whole backlog.)"""

    taken_at = models.DateTimeField(default=timezone.now, db_index=True)
    queued = models.IntegerField()
    running = models.IntegerField()

    class Meta:
        ordering = ["taken_at"]
