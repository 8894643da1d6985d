"""The notifier loop: one leader at a time watches heartbeats and keeps the queue honest.

Each tick the leader declares silent workers dead (moving only their orders), requeues
orders whose lease lapsed, expires orders past their time-to-live, prunes old finished
orders now and then, and repairs bucket ownership if it ever drifts from the ring."""

import logging
import os
import signal
import socket
import threading
import time
from datetime import timedelta

from django.db import close_old_connections, transaction
from django.utils import timezone

from orders import services
from pizzaq import conf
from workers import leadership
from workers.events import record
from workers.membership import Death, declare_dead
from workers.models import EventKind, Worker, WorkerStatus
from workers.ownership import lock_membership, rebalance

log = logging.getLogger("pizzaq.notifier")

PRUNE_EVERY = 60.0


class Notifier:
    def __init__(self, identity: str | None = None):
        self.identity = identity or f"{socket.gethostname()}:{os.getpid()}"
        settings = conf.get()
        # Tick twice per heartbeat; hold the lease for 1.5 heartbeats, so a standby
        # takes over within two heartbeat intervals of the leader's death.
        self.tick_seconds = settings.heartbeat_interval / 2
        self.lease_seconds = settings.heartbeat_interval * 1.5
        self.stopping = threading.Event()
        self.leading = False
        self.last_prune = 0.0

    def run(self) -> None:
        log.info("notifier %s started (tick %.1f s)", self.identity, self.tick_seconds)
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                if self._lead():
                    self.tick()
            except Exception:
                log.exception("notifier %s: tick failed; trying again", self.identity)
            finally:
                close_old_connections()
            self.stopping.wait(max(0.0, self.tick_seconds - (time.monotonic() - started)))
        if self.leading:
            leadership.give_up(self.identity)
        log.info("notifier %s stopped", self.identity)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stopping.set())

    def _lead(self) -> bool:
        leading = leadership.hold_or_take(self.identity, self.lease_seconds)
        if leading and not self.leading:
            record(EventKind.LEADER, f"notifier {self.identity} is now the leader", actor=self.identity)
        elif self.leading and not leading:
            log.warning("notifier %s lost the leadership", self.identity)
        self.leading = leading
        return leading

    def tick(self) -> None:
        """One round of the leader's duties."""
        self.bury_silent_workers()
        if lapsed := services.requeue_lapsed():
            log.info("%d orders whose lease lapsed were requeued or dead-lettered", lapsed)
        if expired := services.expire_overdue():
            log.info("%d orders expired before they started", expired)
        self.repair_ownership()
        if time.monotonic() - self.last_prune >= PRUNE_EVERY:
            self.last_prune = time.monotonic()
            if pruned := services.prune_finished():
                log.info("pruned %d finished orders past retention", pruned)

    def bury_silent_workers(self) -> None:
        timeout = conf.get().worker_timeout
        now = timezone.now()
        cutoff = now - timedelta(seconds=timeout)
        silent = Worker.objects.live().filter(last_heartbeat__lt=cutoff)
        for worker in silent:
            silence = worker.heartbeat_age(now)
            death = Death(EventKind.DIED, f"{worker.name} missed heartbeats for {silence:.1f} s", self.identity)
            outcome = declare_dead(worker.name, death, silent_since=cutoff)
            if outcome:
                log.warning(outcome.message)

    def repair_ownership(self) -> None:
        """A safety net: buckets always end up with an alive owner, even after a crash
        between a membership change and its rebalance."""
        if not Worker.objects.filter(status=WorkerStatus.ALIVE).exists():
            return
        with transaction.atomic():
            lock_membership()
            if changes := rebalance():
                record(EventKind.REASSIGNED, f"{len(changes)} buckets reassigned to match the ring",
                       actor=self.identity, data={"buckets": sorted(changes)})
