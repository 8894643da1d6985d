"""The notifier loop: one leader at a time watches heartbeats and keeps the queue honest.

Each tick the leader declares silent workers dead (moving only their orders), requeues
orders whose lease lapsed, expires orders past their time-to-live, places the slots of
periodic schedules that fell due, prunes old finished orders now and then, and repairs
bucket ownership if it ever drifts from the ring.

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

from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import Count
from django.utils import timezone

from orders import schedules, services
from orders.models import Order, Status
from orders import conf
from workers import leadership
from workers.events import record
from workers.beacon import ChangeBeacon
from workers.contact import RETRY_CAP, DatabaseContact
from workers.membership import Death, change_membership, declare_dead
from workers.models import EventKind, QueueSample, Worker, WorkerStatus
from workers.ownership import moved_buckets
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
        # A gap this long between two answers from the database breaks the contact (the
        # notifier was cut off, frozen, or a call hung): short enough that a worker whose
        # calls failed meanwhile has been heard again (a heartbeat, after a retry's backoff)
        # before its silence counts, yet never below two ticks.
        heard_again_within = self.worker_timeout - 2 * settings.heartbeat_interval - RETRY_CAP
        self.contact_gap = max(2 * self.tick_seconds, min(self.worker_timeout / 2, heard_again_within))
        self.stopping = threading.Event()
        self.leading = False
        self.last_prune = self.last_sample = self.last_sync_warning = 0.0
        # Since when (monotonic) the leader has been in unbroken contact with the database,
        # and when it last reached it.
        self.contact_since: float | None = None
        self.last_contact = 0.0
        # Since when (wall clock) this notifier, leading or standing by, has been present:
        # schedules owe every slot since then (orders/schedules.py). Only a silence longer
        # than a worker timeout (a freeze, a partition, an outage) ends a presence, not one
        # failed statement or one slow duty, which would skip the slots they delayed.
        self.present_since = timezone.now()
        self.schedules_synced = False
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
        self._give_up_the_lead()
        log.info("notifier %s stopped", self.identity)

    def _give_up_the_lead(self) -> None:
        if not self.leading:
            return
        try:
            leadership.give_up(self.identity)
        except DatabaseError as error:
            log.warning("notifier %s could not hand the lead over (%s); its lease lapses instead", self.identity, error)

    def step(self) -> None:
        """Hold (or take) the lead and, leading, tick; a failure is logged and tried again."""
        self.sync_schedules()
        try:
            if self._lead():
                self.tick()
            self.contact.reached()
        except (OperationalError, InterfaceError) as error:
            # Retry point: the next step tries again; the contact starts over once it is back.
            self.contact_since = None
            self.contact.failed("leading", error)
        except Exception:
            # A bug or a bad row, not an outage: the contact holds, the next tick goes on.
            log.exception("notifier %s: tick failed; trying again", self.identity)
        finally:
            close_old_connections()

    def _heard_from_database(self) -> None:
        """The database answered just now: extend the unbroken contact, or start it anew."""
        now = time.monotonic()
        if self.contact_since is None or now - self.last_contact > self.contact_gap:
            if self.contact_since is not None:
                log.warning("notifier %s: no answer from the database for %.1f s", self.identity,
                            now - self.last_contact)
            self.contact_since = now
        if now - self.last_contact > self.worker_timeout:
            self.present_since = timezone.now()
        self.last_contact = now

    def may_judge_silence(self) -> bool:
        """Whether the leader has been in contact long enough to have heard every live
        worker's heartbeat (and lease renewal) since the contact began."""
        self._heard_from_database()
        return time.monotonic() - self.contact_since >= self.worker_timeout

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())

    def _lead(self) -> bool:
        # The lease and the event that says who took it commit together.
        with transaction.atomic():
            leading = leadership.hold_or_take(self.identity, self.lease_seconds)
            if leading and not self.leading:
                record(EventKind.LEADER, f"notifier {self.identity} is now the leader", actor=self.identity)
        self._heard_from_database()
        if leading and not self.leading:
            self.contact_since = time.monotonic()  # a new leader has heard nobody yet
        elif self.leading and not leading:
            log.warning("notifier %s lost the leadership", self.identity)
        self.leading = leading
        return leading

    def tick(self) -> None:
        """One round of the leader's duties; after each, the database has answered again."""
        changed = False
        duties = [self.place_scheduled, self.expire_overdue, self.close_orphaned_pins, self.repair_ownership,
                  self.prune, self.sample]
        if self.may_judge_silence():
            duties = [self.bury_silent_workers, self.requeue_lapsed, *duties]
        for duty in duties:
            changed = bool(duty()) or changed
            self._heard_from_database()
        if changed:
            self.beacon.mark()

    def sync_schedules(self) -> None:
        """This deployment's PIZZAQ_SCHEDULES, written where every notifier reads them, once
        per start. Until it is, each step tries again; leading goes on meanwhile."""
        if self.schedules_synced:
            return
        try:
            schedules.sync_from_settings()
            self.schedules_synced = True
        except DatabaseError as error:
            # Retry point: the next step. (Said once a minute: the tables may just not be migrated yet.)
            if self._due("last_sync_warning", PRUNE_EVERY):
                log.warning("notifier %s could not write PIZZAQ_SCHEDULES yet (%s); trying again", self.identity, error)
        finally:
            close_old_connections()

    def place_scheduled(self) -> int:
        placed = schedules.fire_due(timezone.now(), self.present_since)
        for slot in placed:
            log.info("schedule %s: slot %s placed as order %s", slot.schedule_id, slot.slot_at.isoformat(), slot.order_id)
        return len(placed)

    def requeue_lapsed(self) -> int:
        if lapsed := services.requeue_lapsed():
            log.info("%d orders whose lease lapsed were requeued or dead-lettered", lapsed)
        return lapsed

    def expire_overdue(self) -> int:
        if expired := services.expire_overdue():
            log.info("%d orders expired before they started", expired)
        return expired

    def close_orphaned_pins(self) -> int:
        if closed := services.close_orphaned_pins(Worker.objects.live().values_list("name", flat=True)):
            log.info("%d take-away orders failed: their shop is not open", closed)
        return closed

    def prune(self) -> int:
        """One batch a tick at most, so a long prune never delays noticing a dead worker; a
        full batch means more is waiting, so the next tick prunes again."""
        if not self._due("last_prune", PRUNE_EVERY):
            return 0
        schedules.forget_slots(older_than=conf.get().retention)
        if not (pruned := services.prune_finished(max_batches=1)):
            return 0
        log.info("pruned %d finished orders past retention", pruned)
        if pruned >= services.PRUNE_BATCH:
            self.last_prune = 0.0
        return pruned

    def sample(self) -> bool:
        if not self._due("last_sample", SAMPLE_EVERY):
            return False
        self.sample_queue()
        return True

    def _due(self, clock: str, every: float) -> bool:
        if time.monotonic() - getattr(self, clock) < every:
            return False
        setattr(self, clock, time.monotonic())
        return True

    def sample_queue(self) -> None:
        """Record the queue's depth for the dashboard's chart, and forget old samples."""
        counts = dict(Order.objects.in_play()
                      .values_list("status").annotate(n=Count("id")))
        QueueSample.objects.create(queued=counts.get(Status.QUEUED, 0), running=counts.get(Status.RUNNING, 0))
        QueueSample.objects.filter(taken_at__lt=timezone.now() - SAMPLES_KEPT).delete()

    def bury_silent_workers(self) -> bool:
        now = timezone.now()
        cutoff = now - timedelta(seconds=self.worker_timeout)
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
        _, event = change_membership(lambda: True, lambda _, changes: changes and {
            "kind": EventKind.REASSIGNED, "actor": self.identity, "data": {"buckets": moved_buckets(changes)},
            "message": f"{len(changes)} buckets reassigned to match the ring"})
        return event is not None
