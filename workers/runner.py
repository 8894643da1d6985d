"""The worker loop: claim what fits from the buckets this worker owns, run it on the
worker's order threads, record the outcome with this run's fencing token; heartbeat and renew
leases on the side; stop gracefully.

A worker holds up to ``concurrency + prefetch`` orders: the ones running and a few
claimed ahead, so that one claim serves many orders. It claims again once it holds half
that or fewer. Results of plain handlers are recorded in batches by the Recorder; an
order counts as held until its result is recorded (or fenced off)."""

import json
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from orders import services
from orders.claiming import Claim
from orders.handlers import UnknownKind, get_handler
from orders.models import Order
from orders.notify import ORDERS_CHANNEL
from pizzaq import conf
from pizzaq.logformat import order_fields
from workers import membership
from workers.beacon import ChangeBeacon
from workers.listener import Listener
from workers.recorder import Recorder
from workers.ownership import owned_by, still_alive

log = logging.getLogger("pizzaq.worker")

EXIT_FENCED = 3
# Orders claimed ahead per thread unless told otherwise: a worker holds four orders per
# thread, as Celery's default prefetch multiplier has it.
DEFAULT_PREFETCH_PER_THREAD = 3


class Fenced(Exception):
    """This run lost its order; whatever it did inside the completion transaction is undone."""


class HandlerFailed(Exception):
    """The handler raised or returned what JSON cannot hold: this attempt failed. (Errors
    recording an outcome are not the handler's: they leave the order to its lease.)"""

    def __init__(self, traceback_text: str):
        super().__init__(traceback_text.strip().splitlines()[-1])
        self.traceback = traceback_text


def _call(handler, order: Order):
    """The handler's JSON-ready result, or HandlerFailed."""
    try:
        result = handler.func(order)
        json.dumps(result, allow_nan=False)
    except Exception:
        raise HandlerFailed(traceback.format_exc()) from None
    return result


@dataclass(eq=False)
class Run:
    order: Order
    # When its handler started (None: claimed ahead, still waiting for a thread), on the
    # monotonic clock (for time limits) and the wall clock (for the record).
    started: float | None = None
    began: datetime | None = None
    elapsed: float = 0.0

    @property
    def token(self) -> tuple:
        # Runs are keyed by the fencing token: a stuck run and its retry on this same
        # shop are two runs.
        return self.order.pk, self.order.attempt


class Runner:
    def __init__(self, name: str, concurrency: int = 4, grace: float | None = None, prefetch: int | None = None):
        self.name, self.concurrency = name, concurrency
        self.capacity = concurrency + (DEFAULT_PREFETCH_PER_THREAD * concurrency if prefetch is None else prefetch)
        self.refill_at = self.capacity // 2
        self.grace = conf.get().shutdown_grace if grace is None else grace
        self.stopping = threading.Event()
        # Set once shutdown is over: heartbeats and lease renewals go on until then, so a
        # worker finishing its orders in the grace period is not taken for dead.
        self.exited = threading.Event()
        self.wake = threading.Event()
        # Every order held, by token, from its claim until its outcome is recorded; and
        # those of them whose handler has returned and whose result waits for the recorder.
        # Claims count only the others, so a claim goes out while a batch is written.
        self.running: dict = {}
        self.recording: dict = {}
        # Claimed orders waiting for a thread. (A plain queue and long-lived threads: a
        # future per order, as an executor makes, cost more than a no-op order.)
        self.ready: queue.SimpleQueue = queue.SimpleQueue()
        self.beacon = ChangeBeacon(self.stopping)
        self.recorder = Recorder(name, self._settle)
        self.worker = None
        self.fenced_off = False
        self.signals_seen = 0

    # --- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped; returns the process exit code."""
        self.worker = membership.register(self.name, self.concurrency)
        log.info("%s started: concurrency %d, holding up to %d orders, pid %d", self.name, self.concurrency,
                 self.capacity, os.getpid())
        self._start_side_threads()
        self._loop()
        self._shut_down()
        self.exited.set()
        if self.running:
            # Runs still going were released (or fenced off): their results would be
            # refused, so do not wait for them.
            logging.shutdown()
            os._exit(EXIT_FENCED if self.fenced_off else 0)
        for _ in range(self.concurrency):
            self.ready.put(None)  # each order thread ends at its None
        return EXIT_FENCED if self.fenced_off else 0

    def request_stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("%s stopping (%s): no new claims", self.name, reason)
        self.stopping.set()
        self.wake.set()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        self.signals_seen += 1
        if self.signals_seen > 1:
            # A second signal means now: the notifier will recover what was running.
            log.warning("%s: second signal, exiting at once", self.name)
            os._exit(1)
        self.request_stop(signal.Signals(signum).name)

    def _start_side_threads(self) -> None:
        for number in range(self.concurrency):
            threading.Thread(target=self._serve, name=f"{self.name}_{number}", daemon=True).start()
        threading.Thread(target=self._heartbeat_loop, name=f"{self.name}-heartbeat", daemon=True).start()
        self.beacon.start()
        self.recorder.start()
        if connection.vendor == "postgresql":
            Listener(ORDERS_CHANNEL, self.wake, self.stopping).start()

    # --- the main loop -----------------------------------------------------------------

    def _loop(self) -> None:
        poll = conf.get().poll_interval
        claim = Claim(self.name, buckets=owned_by(self.name), alive=still_alive(self.worker))
        while not self.stopping.is_set():
            self.wake.clear()
            held = self._unfinished()
            if held > self.refill_at:
                self.wake.wait(poll)
                continue
            free = self.capacity - held
            try:
                claimed = claim(free)
            except DatabaseError as error:
                # A restart or a lock timeout: nothing was claimed. Reconnect and go on.
                log.warning("%s could not claim (%s); trying again", self.name, error)
                close_old_connections()
                self.stopping.wait(poll)
                continue
            for order in claimed:
                self._submit(order)
            if claimed:
                self.beacon.mark()
            if len(claimed) < free:
                self.wake.wait(poll)

    def _submit(self, order: Order) -> None:
        # The hot path: build the log fields only when the line will be written.
        if log.isEnabledFor(logging.INFO):
            log.info("%s claimed order %s (%s, priority %d, bucket %d, attempt %d)",
                     self.name, order.pk, order.kind, order.priority, order.bucket, order.attempt,
                     extra=order_fields(self.name, order))
        run = Run(order)
        self.running[run.token] = run
        self.ready.put(run)

    def _settle(self, run: Run, outcome=None, error=None) -> None:
        """The run is over and its outcome recorded (or refused, or lost with ``error``)."""
        if error is not None:
            # Recording the outcome failed (database gone?); the lease will lapse and the
            # order will be retried elsewhere.
            log.error("%s could not record the outcome of order %s: %r", self.name, run.order.pk, error)
        elif outcome is not None:
            self._log_outcome(run, outcome)
        self.running.pop(run.token, None)
        self.recording.pop(run.token, None)
        self.beacon.mark()
        if self._unfinished() <= self.refill_at:
            self.wake.set()

    def _unfinished(self) -> int:
        """Orders held whose handler has not returned yet."""
        return len(self.running) - len(self.recording)

    def _log_outcome(self, run: Run, outcome) -> None:
        level = logging.INFO if outcome else logging.WARNING
        if log.isEnabledFor(level):
            message = "%s: %s (%.2f s)" if outcome else "%s discarded its result: %s (%.2f s)"
            log.log(level, message, self.name, outcome.message, run.elapsed,
                    extra=order_fields(self.name, run.order, elapsed=round(run.elapsed, 3)))

    # --- one order ---------------------------------------------------------------------

    def _serve(self) -> None:
        """An order thread: run orders as they are claimed, until a None comes."""
        while (run := self.ready.get()) is not None:
            try:
                self._process(run)
            except Exception as error:
                self._settle(run, error=error)

    def _process(self, run: Run) -> None:
        try:
            self._run_and_record(run)
        except DatabaseError:
            # This thread's connection may be broken: drop it, so its next order gets a
            # fresh one. (Checking it after every order would cost a round trip each.)
            close_old_connections()
            raise

    def _run_and_record(self, run: Run) -> None:
        order = run.order
        run.started, run.began = time.monotonic(), timezone.now()
        if order.expires_at is not None and run.began >= order.expires_at:
            self._settle(run, services.expire_unstarted(order, self.name, order.attempt))
            return
        try:
            outcome = self._run_handler(run)
        except HandlerFailed as failed:
            run.elapsed = time.monotonic() - run.started
            outcome = services.fail(order, self.name, order.attempt, failed.traceback, started_at=run.began)
        except Fenced as fenced:
            log.warning("%s discarded its result: %s", self.name, fenced, extra=order_fields(self.name, order))
            self._settle(run)
            return
        if outcome is not None:  # None: the recorder has it and settles it once written
            self._settle(run, outcome)

    def _run_handler(self, run: Run):
        """Run the order's handler: its Outcome if it was recorded here (an atomic handler
        completes in its own transaction), None if it went to the recorder."""
        order = run.order
        try:
            handler = get_handler(order.kind)
        except UnknownKind as error:
            raise HandlerFailed(f"UnknownKind: {error}") from None
        if handler.visibility_timeout:
            services.extend(order, self.name, order.attempt, handler.visibility_timeout)
        if not handler.atomic:
            result = _call(handler, order)
            run.elapsed = time.monotonic() - run.started
            self.recording[run.token] = run
            if self._unfinished() <= self.refill_at:
                self.wake.set()  # the claim loop may claim again while this is written
            self.recorder.record(run, result)
            return None
        with transaction.atomic():
            result = _call(handler, order)
            outcome = services.complete(order, self.name, order.attempt, result, started_at=run.began)
            if not outcome:
                # Roll back the handler's writes too: another run owns this order now.
                raise Fenced(outcome.message)
        run.elapsed = time.monotonic() - run.started
        return outcome

    # --- heartbeat, leases and shutdown ------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = conf.get().heartbeat_interval
        while not self.exited.wait(interval):
            try:
                alive = membership.heartbeat(self.worker)
                if alive:
                    self._renew_leases()
                    self.beacon.mark()
            except DatabaseError as error:  # the database may be briefly unreachable
                log.warning("%s heartbeat failed: %s", self.name, error)
                close_old_connections()
                continue
            if not alive:
                self.fenced_off = True
                log.error("%s was declared dead and its orders were moved elsewhere; exiting without "
                          "recording any result (start it again to rejoin as a new incarnation)", self.name)
                self.request_stop("fenced off")
                break
        close_old_connections()

    def _renew_leases(self) -> None:
        """Renew the lease of every run still within its kind's time limit; a run past it
        is stuck, and its lease is left to lapse."""
        default = conf.get().visibility_timeout
        now = time.monotonic()
        by_length = defaultdict(list)
        for token, run in list(self.running.items()):
            try:
                handler = get_handler(run.order.kind)
            except UnknownKind:
                continue
            if run.started is None or handler.timeout is None or now - run.started < handler.timeout:
                by_length[handler.visibility_timeout or default].append(token)
        for seconds, tokens in by_length.items():
            services.renew_leases(self.name, tokens, seconds)

    def _shut_down(self) -> None:
        if not self.fenced_off:
            membership.mark_stopping(self.worker)
        self._release_unstarted()
        # Fenced off or not, let running handlers end and their results be recorded: a
        # fenced run's completion is refused (and rolled back), and the log says so.
        if not self._settled_within(self.grace):
            log.warning("%s: %d orders still running after %.0f s grace; %s", self.name, len(self.running),
                        self.grace, "abandoning them" if self.fenced_off else "releasing them")
        if not self.fenced_off:
            membership.deregister(self.worker, "stopped")
        self.recorder.stop()
        log.info("%s stopped", self.name)

    def _release_unstarted(self) -> None:
        """Orders claimed ahead that no thread has started go back to the queue now,
        for other workers to take, rather than after the grace period."""
        unstarted = []
        while True:
            try:
                unstarted.append(self.ready.get_nowait())
            except queue.Empty:
                break
        for run in unstarted:
            self.running.pop(run.token, None)
        if unstarted and not self.fenced_off:
            released = services.release(self.name, [run.token for run in unstarted])
            log.info("%s released %d orders it had claimed but not started", self.name, released)

    def _settled_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running
