"""The notifier loop: one leader at a time watches heartbeats and keeps the queue honest.

Each tick the leader declares silent workers dead (moving only their orders), requeues
orders whose lease lapsed, expires orders past their time-to-live, prunes old finished
orders now and then, and repairs bucket ownership if it ever drifts from the ring.

A silence counts only while the leader could have heard it. After it (re)connects to the
database, takes the leadership, or finds the database back after an outage, the leader
waits a full worker timeout of unbroken contact before it judges heartbeats or leases:
workers that could not reach the database either were not silent by choice."""

import logging
import os
import signal
import socket
import threading
import time
from datetime import timedelta

from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Count
from django.utils import timezone

from orders import services
from orders.models import Order, Status
from pizzaq import conf
from workers import leadership
from workers.events import record
from workers.beacon import ChangeBeacon
from workers.contact import DatabaseContact
from workers.membership import Death, declare_dead
from workers.models import EventKind, QueueSample, Worker, WorkerStatus
from workers.ownership import lock_membership, rebalance
from workers.supervision import keep_running

log = logging.getLogger("pizzaq.notifier")

PRUNE_EVERY = 60.0
SAMPLE_EVERY = 5.0
SAMPLES_KEPT = timedelta(hours=1)


class Notifier:
    def __init__(self, identity: str | None = None):
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        settings = conf.get()
        # Tick twice per heartbeat; hold the lease for 1.5 heartbeats, so a standby
        # takes over within two heartbeat intervals of the leader's death.
        self.tick_seconds = settings.heartbeat_interval / 2
        self.lease_seconds = settings.heartbeat_interval * 1.5
        self.worker_timeout = settings.worker_timeout
        # A gap this long between two calls that reached the database breaks the contact
        # (the notifier was cut off, or frozen, or a call hung).
        self.contact_gap = settings.worker_timeout / 2
        self.stopping = threading.Event()
        self.leading = False
        self.last_prune = self.last_sample = 0.0
        # Since when (monotonic) the leader has been in unbroken contact with the database,
        # and when it last reached it.
        self.contact_since: float | None = None
        self.last_contact = 0.0
        self.contact = DatabaseContact(f"notifier {self.identity}")
        self.beacon = ChangeBeacon(self.stopping, self.contact)

    def run(self) -> None:
        log.info("notifier %s started (tick %.1f s)", self.identity, self.tick_seconds)
        if self.beacon.enabled:
            keep_running("notifier-beacon", self.beacon.run, self.stopping)
        while not self.stopping.is_set():
            started = time.monotonic()
            self.step()
            self.stopping.wait(max(0.0, self.tick_seconds - (time.monotonic() - started)))
        if self.leading:
            leadership.give_up(self.identity)
        log.info("notifier %s stopped", self.identity)

    def step(self) -> None:
        """Hold (or take) the lead and, leading, tick; a failure is logged and tried again."""
        try:
            if self._lead():
                self.tick()
            self.contact.reached()
        except DatabaseError as error:
            # Retry point: the next step tries again; the contact starts over once it is back.
            self.contact_since = None
            self.contact.failed("leading", error)
        except Exception:
            log.exception("notifier %s: tick failed; trying again", self.identity)
        finally:
            close_old_connections()

    def _in_contact(self) -> None:
        """The database answered just now: extend the unbroken contact, or start it anew."""
        now = time.monotonic()
        if self.contact_since is None or now - self.last_contact > self.contact_gap:
            if self.contact_since is not None:
                log.warning("notifier %s: no answer from the database for %.1f s", self.identity,
                            now - self.last_contact)
            self.contact_since = now
        self.last_contact = now

    def may_judge_silence(self) -> bool:
        """Whether the leader has been in contact long enough to have heard every live
        worker's heartbeat (and lease renewal) since the contact began."""
        self._in_contact()
        return time.monotonic() - self.contact_since >= self.worker_timeout

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())

    def _lead(self) -> bool:
        leading = leadership.hold_or_take(self.identity, self.lease_seconds)
        self._in_contact()
        if leading and not self.leading:
            self.contact_since = time.monotonic()  # a new leader has heard nobody yet
            record(EventKind.LEADER, f"notifier {self.identity} is now the leader", actor=self.identity)
        elif self.leading and not leading:
            log.warning("notifier %s lost the leadership", self.identity)
        self.leading = leading
        return leading

    def tick(self) -> None:
        """One round of the leader's duties."""
        changed = lapsed = 0
        if self.may_judge_silence():
            changed = self.bury_silent_workers()
            if lapsed := services.requeue_lapsed():
                log.info("%d orders whose lease lapsed were requeued or dead-lettered", lapsed)
        if expired := services.expire_overdue():
            log.info("%d orders expired before they started", expired)
        if closed := services.close_orphaned_pins(Worker.objects.live().values_list("name", flat=True)):
            log.info("%d take-away orders failed: their shop is not open", closed)
        changed = self.repair_ownership() or changed or lapsed or expired or closed
        # One batch a tick at most, so a long prune never delays noticing a dead worker;
        # a full batch means more is waiting, so the next tick prunes again.
        if self._due("last_prune", PRUNE_EVERY) and (pruned := services.prune_finished(max_batches=1)):
            log.info("pruned %d finished orders past retention", pruned)
            if pruned >= services.PRUNE_BATCH:
                self.last_prune = 0.0
        if self._due("last_sample", SAMPLE_EVERY):
            self.sample_queue()
            changed = True
        if changed:
            self.beacon.mark()

    def _due(self, clock: str, every: float) -> bool:
        if time.monotonic() - getattr(self, clock) < every:
            return False
        setattr(self, clock, time.monotonic())
        return True

    def sample_queue(self) -> None:
        """Record the queue's depth for the dashboard's chart, and forget old samples."""
        counts = dict(Order.objects.filter(status__in=[Status.QUEUED, Status.RUNNING])
                      .values_list("status").annotate(n=Count("id")))
        QueueSample.objects.create(queued=counts.get(Status.QUEUED, 0), running=counts.get(Status.RUNNING, 0))
        QueueSample.objects.filter(taken_at__lt=timezone.now() - SAMPLES_KEPT).delete()

    def bury_silent_workers(self) -> bool:
        timeout = conf.get().worker_timeout
        now = timezone.now()
        cutoff = now - timedelta(seconds=timeout)
        silent = Worker.objects.live().filter(last_heartbeat__lt=cutoff)
        buried = False
        for worker in silent:
            silence = worker.heartbeat_age(now)
            death = Death(EventKind.DIED, f"{worker.name} missed heartbeats for {silence:.1f} s", self.identity)
            outcome = declare_dead(worker.name, death, silent_since=cutoff)
            if outcome:
                log.warning(outcome.message)
                buried = True
        return buried

    def repair_ownership(self) -> bool:
        """A safety net: buckets always end up with an alive owner, even after a crash
        between a membership change and its rebalance."""
        if not Worker.objects.filter(status=WorkerStatus.ALIVE).exists():
            return False
        with transaction.atomic():
            lock_membership()
            if changes := rebalance():
                record(EventKind.REASSIGNED, f"{len(changes)} buckets reassigned to match the ring",
                       actor=self.identity, data={"buckets": sorted(changes)})
        return bool(changes)
