"""What is ordered: the Order row, its lifecycle states, API tokens, and the tally of
pruned orders."""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from orders.cadence import Cadence, CadenceError
from orders.ids import uuid7

MIN_PRIORITY, MAX_PRIORITY = -100, 100
DEFAULT_QUEUE = "default"
# A queue's name: letters, digits and ``._-``, as a command line's --queues takes them.
QUEUE_NAME_PATTERN = r"[A-Za-z0-9_.\-]{1,100}"


class Status(models.TextChoices):
    # Placed after other orders (``after=``) that are not all finished yet; becomes
    # queued (or cancelled) in the transaction that finishes the last of them.
    WAITING = "waiting"
    # Waiting to be claimed; retries wait here too, with a later run_after.
    QUEUED = "queued"
    # Claimed by a worker, which holds the (worker, attempt) fencing token.
    RUNNING = "running"
    # The handler returned; the result is stored.
    DONE = "done"
    # Failed on its last attempt (dead-lettered), or could not run (a closed shop).
    DEAD = "dead"
    # Not started before its time-to-live ran out; it never runs.
    EXPIRED = "expired"
    # Withdrawn by a person before it started.
    CANCELLED = "cancelled"


FINISHED = (Status.DONE, Status.DEAD, Status.EXPIRED, Status.CANCELLED)


class OrderQuerySet(models.QuerySet):
    def ready(self, now=None, *, queued=Status.QUEUED):
        """Queued orders that may start now: due and not past their time-to-live.
        (``queued`` may be an expression that stands for the queued status.)"""
        now = now or timezone.now()
        return self.filter(status=queued, run_after__lte=now).exclude(
            expires_at__lte=now
        )

    def claim_order(self):
        """Highest priority first; within a priority, the one waiting longest."""
        return self.order_by("-priority", "run_after", "id")

    def finished(self):
        return self.filter(status__in=FINISHED)

    def in_play(self):
        """Queued and running orders. Two equalities, not ``status__in``: PostgreSQL then
        reads each from its own partial index (the claim's, the running orders'), where
        for ``IN`` it read the whole table."""
        return self.filter(Q(status=Status.QUEUED) | Q(status=Status.RUNNING))


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    kind = models.CharField(max_length=100)
    # Workers serve named queues (runworker --queues); an order runs only on one that
    # serves its queue.
    queue = models.CharField(max_length=100, default=DEFAULT_QUEUE)
    payload = models.JSONField(default=dict, blank=True)
    priority = models.SmallIntegerField(default=0, help_text="-100..100, higher runs first")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    routing_key = models.CharField(max_length=200)
    bucket = models.IntegerField()
    # A take-away order: only this shop may make it.
    pinned_to = models.CharField(max_length=100, blank=True, default="")
    # Worker and attempt together are the fencing token of the current run.
    worker = models.CharField(max_length=100, blank=True, default="")
    attempt = models.IntegerField(default=0)
    max_attempts = models.SmallIntegerField(default=3)
    # Claims that did not use up a try (released on shutdown, lost with a worker,
    # forgiven by a manual retry); the retry budget counts the rest.
    uncounted_attempts = models.IntegerField(default=0)
    run_after = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    # One entry per finished attempt: worker, attempt, started, ended, outcome, error.
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A unique order's key (orders/uniqueness.py holds who has it); "" for most orders.
    unique_key = models.CharField(max_length=200, blank=True, default="")
    # Orders with one key share a per-key concurrency limit (e.g. one customer's).
    concurrency_key = models.CharField(max_length=200, blank=True, default="")
    # How many of the orders this one was placed after are not finished yet (status
    # waiting while more than 0), and whether any order waits for this one: the cue for
    # the database trigger that releases waiting orders (orders/dependencies.py).
    waiting_for = models.IntegerField(default=0)
    has_dependents = models.BooleanField(default=False)
    # What the handler last reported of its run (orders/reporting.py): a fraction from 0
    # to 1 and a few words, and when.
    progress_value = models.FloatField(null=True, blank=True)
    progress_note = models.CharField(max_length=200, blank=True, default="")
    progress_at = models.DateTimeField(null=True, blank=True)

    objects = OrderQuerySet.as_manager()
    # Set on the orders placing gives back: True for one that already held its unique key.
    duplicate = False
    # Set by the worker running this order when someone cancels it (see cancel_requested).
    _cancel_requested = False
    # The run's progress reports, held back and written (orders/reporting.py); made by the
    # first report.
    progress_reporter = None

    class Meta:
        permissions = [("operate_queue", "Can force-fail workers and cancel or retry orders")]
        constraints = [
            models.CheckConstraint(
                condition=Q(priority__gte=MIN_PRIORITY) & Q(priority__lte=MAX_PRIORITY),
                name="order_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="order_status_valid"
            ),
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="order_max_attempts_positive"),
        ]
        indexes = [
            # Serves the claim: the queued rows in claim order, and nothing else.
            models.Index(
                fields=["-priority", "run_after", "id"],
                condition=Q(status="queued"),
                name="order_claim_idx",
            ),
            models.Index(
                fields=["expires_at"],
                condition=Q(status="queued", expires_at__isnull=False),
                name="order_ttl_idx",
            ),
            models.Index(
                fields=["worker", "lease_expires_at"],
                condition=Q(status="running"),
                name="order_running_idx",
            ),
            models.Index(
                fields=["finished_at"],
                condition=Q(finished_at__isnull=False),
                name="order_finished_idx",
            ),
            # The newest orders of the statuses that are few (for the dashboard's and the
            # API's filters). Queued and running orders have the indexes above, and done
            # ones, most of the table, are found walking the primary key. Every status in
            # one index cost each order an entry at each step (placed, claimed, done):
            # about a fifth of PostgreSQL's time in a drain.
            models.Index(fields=["status", "-id"], name="order_uncommon_status_idx",
                         condition=Q(status__in=[Status.WAITING, Status.DEAD, Status.EXPIRED, Status.CANCELLED])),
        ]

    def __str__(self):
        return f"{self.kind} {self.id} ({self.status})"

    def cancel_requested(self) -> bool:
        """In a handler: whether this order was cancelled while it runs. The worker learns
        of it at once (NOTIFY) or by its next heartbeat; the order is already cancelled, and
        whatever the handler returns now is discarded, so it may as well stop."""
        return self._cancel_requested

    def request_cancel(self) -> None:
        """The worker running this order tells its handler to stop."""
        self._cancel_requested = True

    def progress(self, value: float, note: str = "") -> None:
        """In a handler: how far this run has got, a fraction from 0 to 1, and a few words
        (at most 200 characters); written at most once per PIZZAQ progress_interval, and
        only while this run holds the order (orders/reporting.py)."""
        from orders.reporting import report  # it imports this module (through the fence)

        report(self, value, note)


class AfterPolicy(models.TextChoices):
    # If an order it waits for ends dead, expired or cancelled, the waiting order ends
    # cancelled, saying which.
    CANCEL = "cancel"
    # It runs once the others are finished, however they ended.
    ALWAYS = "always"


class Dependency(models.Model):
    """Order ``waiting`` runs only after order ``on`` is finished. Rows are written when
    the waiting order is placed; the trigger that releases it reads them (orders/dependencies.py)."""

    waiting = models.ForeignKey(Order, on_delete=models.DB_CASCADE, related_name="+")
    on = models.ForeignKey(Order, on_delete=models.DB_CASCADE, related_name="+")
    policy = models.CharField(max_length=10, choices=AfterPolicy.choices, default=AfterPolicy.CANCEL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["waiting", "on"], name="dependency_once")]

    def __str__(self):
        return f"order {self.waiting_id} after {self.on_id}"


class Sequence(models.Model):
    """The last order placed with one key of an ordered kind or queue: the next one with
    that key waits for it (orders/sequences.py)."""

    key = models.CharField(max_length=400, primary_key=True)
    last_order_id = models.UUIDField()

    def __str__(self):
        return f"sequence {self.key} -> {self.last_order_id}"


class QueueQuerySet(models.QuerySet):
    def paused(self):
        """The names of paused queues, as a subquery a claim can filter on."""
        return self.filter(paused_at__isnull=False).values("name")


class Queue(models.Model):
    """What people set for a named queue: whether it is paused. A queue needs no row to
    exist: orders name it, workers serve it; a row appears the first time it is paused."""

    name = models.CharField(max_length=100, primary_key=True,
                            validators=[RegexValidator(f"^{QUEUE_NAME_PATTERN}$", "letters, digits, '.', '_' or '-'")])
    # While set, the queue's orders are not claimed (running ones finish).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True, default="")

    objects = QueueQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"queue {self.name}" + (" (paused)" if self.paused_at else "")

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None


class LimitScope(models.TextChoices):
    QUEUE = "queue"
    KIND = "kind"


class Limit(models.Model):
    """A cluster-wide limit on the orders of one queue or one kind: how many run at once
    (in all, and per concurrency key) and how many start per period. Enforced in the claim
    (orders/limits.py). Rows come from the admin, or from PIZZAQ_LIMITS (``from_settings``),
    which a starting worker writes here."""

    scope = models.CharField(max_length=10, choices=LimitScope.choices)
    name = models.CharField(max_length=100, help_text="The queue's or the kind's name")
    max_running = models.PositiveIntegerField(null=True, blank=True, help_text="At most this many running at once")
    max_running_per_key = models.PositiveIntegerField(
        null=True, blank=True, help_text="At most this many running at once with one concurrency key")
    max_starts = models.PositiveIntegerField(null=True, blank=True, help_text="At most this many started per period")
    per_seconds = models.FloatField(null=True, blank=True, help_text="The period of max_starts, in seconds")
    from_settings = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["scope", "name"]
        constraints = [
            models.UniqueConstraint(fields=["scope", "name"], name="limit_scope_name"),
            models.CheckConstraint(condition=Q(max_starts__isnull=True) | Q(per_seconds__gt=0),
                                   name="limit_starts_have_a_period"),
        ]

    def __str__(self):
        return f"limit on {self.scope} {self.name}"


class LimitStart(models.Model):
    """One order started under a limit with ``max_starts``: the sliding window counts these."""

    limit = models.ForeignKey(Limit, on_delete=models.CASCADE, related_name="starts")
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["limit", "at"], name="limit_start_idx")]


class UniqueScope(models.TextChoices):
    # One order per key among the queued ones.
    QUEUED = "queued"
    # One among the queued and running ones: no second copy waits or runs meanwhile.
    ACTIVE = "active"
    # One per key for a period after it was placed, whatever became of it.
    PERIOD = "period"


class UniqueKey(models.Model):
    """Which order holds a unique key, and for how long: the primary key is the unique
    index that decides between two placers, whatever their timing."""

    key = models.CharField(max_length=200, primary_key=True)
    scope = models.CharField(max_length=10, choices=UniqueScope.choices)
    order_id = models.UUIDField()
    # Scope PERIOD: when the key is free again.
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"unique key {self.key} -> {self.order_id}"


class Schedule(models.Model):
    """Orders placed on a cadence by the leading notifier (orders/schedules.py): one order
    per slot, never two (ScheduleSlot decides), and after a stretch with no notifier at
    most ``catch_up`` of the slots missed meanwhile, never a pile. Rows come from the admin,
    or from PIZZAQ_SCHEDULES, which a starting notifier writes here."""

    name = models.CharField(max_length=100, primary_key=True,
                            validators=[RegexValidator(f"^{QUEUE_NAME_PATTERN}$", "letters, digits, '.', '_' or '-'")])
    cron = models.CharField(max_length=200, blank=True, default="",
                            help_text="A cron expression (5 fields, or 6 with seconds first; @hourly, @daily, ...) in the time zone")
    every = models.FloatField(null=True, blank=True,
                              help_text="Or an interval in seconds (at least 1); slots fall on its multiples since 1970")
    time_zone = models.CharField(max_length=64, default="UTC")
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=100, default=DEFAULT_QUEUE)
    priority = models.SmallIntegerField(default=0, help_text="-100..100, higher runs first")
    ttl = models.FloatField(null=True, blank=True, help_text="Seconds an order may wait unstarted before it expires")
    catch_up = models.PositiveSmallIntegerField(
        default=1, help_text="After a stretch with no notifier, how many of the slots missed meanwhile to place "
                             "(the latest ones); 0 skips them")
    enabled = models.BooleanField(default=True)
    from_settings = models.BooleanField(default=False, editable=False)
    # Every slot up to this moment is settled: placed, or skipped as missed.
    settled_through = models.DateTimeField(default=timezone.now, editable=False)
    # The first slot after settled_through: the notifier reads only schedules that are due.
    next_slot_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_slot_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_order_id = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(cron="", every__isnull=False) | (~Q(cron="") & Q(every__isnull=True)),
                                   name="schedule_cron_or_every"),
        ]
        indexes = [models.Index(fields=["next_slot_at"], condition=Q(enabled=True), name="schedule_due_idx")]

    def __str__(self):
        return f"schedule {self.name}" + ("" if self.enabled else " (disabled)")

    def cadence(self) -> Cadence:
        return Cadence(self.cron, self.every, self.time_zone)

    def describe(self) -> str:
        """The cadence in words, or why it cannot fire (a row edited past the checks)."""
        try:
            return self.cadence().describe()
        except CadenceError as error:
            return f"cannot fire: {error}"


class ScheduleSlot(models.Model):
    """One slot of a schedule, placed as an order. The unique (schedule, slot) pair is what
    keeps two notifiers, a leader change or a restart from placing a slot twice."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="slots")
    slot_at = models.DateTimeField()
    order_id = models.UUIDField()
    placed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["schedule", "slot_at"], name="schedule_slot_once")]
        indexes = [models.Index(fields=["placed_at"], name="schedule_slot_placed_idx")]

    def __str__(self):
        return f"{self.schedule_id} slot {self.slot_at:%Y-%m-%d %H:%M:%S} -> {self.order_id}"


class ApiToken(models.Model):
    """A named bearer token for the JSON API; only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} ({self.prefix}…) for {self.user}"


# --- totals that survive pruning -------------------------------------------------------


class PrunedTally(models.Model):
    """What pruning deleted, per kind and final status (orders/tally.py writes it). Totals
    read from the orders table (placed, done, failed attempts, durations) add these, so
    they never go down."""

    kind = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices)
    orders = models.BigIntegerField(default=0)
    # Failed attempts in the pruned orders' histories, by outcome: {"failed": 2, "lapsed": 1}.
    failures = models.JSONField(default=dict)
    # Done orders only: {"run": {"buckets": [...], "count": n, "sum": s}, "wait": {...}}.
    durations = models.JSONField(default=dict)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "status"], name="pruned_tally_kind_status")]

    def __str__(self):
        return f"{self.orders} pruned {self.kind} orders ({self.status})"
