"""The worker loop: claim what fits from the buckets this worker owns, run it on a
thread pool, record the outcome with this run's fencing token; heartbeat and renew
leases on the side; stop gracefully.

A worker holds up to ``concurrency + prefetch`` orders: the ones running and a few
claimed ahead, so that one claim serves many orders. It claims again once it holds half
that or fewer. Results of plain handlers are recorded in batches by the Recorder; an
order counts as held until its result is recorded (or fenced off)."""

import json
import logging
import os
import signal
import threading
import time
import traceback
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
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


@dataclass
class Run:
    order: Order
    future: Future | None = None
    # When its handler started (None: claimed ahead, still waiting for a thread), on the
    # monotonic clock (for time limits) and the wall clock (for the record).
    started: float | None = None
    began: datetime | None = None
    elapsed: float = 0.0


def _done(outcome) -> Future:
    future = Future()
    future.set_result(outcome)
    return future


class Runner:
    def __init__(self, name: str, concurrency: int = 4, grace: float | None = None, prefetch: int | None = None):
        self.name, self.concurrency = name, concurrency
        self.capacity = concurrency + (concurrency if prefetch is None else prefetch)
        self.refill_at = self.capacity // 2
        self.grace = conf.get().shutdown_grace if grace is None else grace
        self.stopping = threading.Event()
        # Set once shutdown is over: heartbeats and lease renewals go on until then, so a
        # worker finishing its orders in the grace period is not taken for dead.
        self.exited = threading.Event()
        self.wake = threading.Event()
        self.running: dict = {}
        self.beacon = ChangeBeacon(self.stopping)
        self.recorder = Recorder(name)
        self.worker = None
        self.fenced_off = False
        self.signals_seen = 0

    # --- lifecycle ---------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped; returns the process exit code."""
        self.worker = membership.register(self.name, self.concurrency)
        log.info("%s started: concurrency %d, pid %d", self.name, self.concurrency, os.getpid())
        self._start_side_threads()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix=self.name) as pool:
            self._loop(pool)
            self._shut_down(pool)
            self.exited.set()
            if self.running:
                # Runs still going were released (or fenced off): their results would be
                # refused, so do not wait for them.
                logging.shutdown()
                os._exit(EXIT_FENCED if self.fenced_off else 0)
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
        threading.Thread(target=self._heartbeat_loop, name=f"{self.name}-heartbeat", daemon=True).start()
        self.beacon.start()
        self.recorder.start()
        if connection.vendor == "postgresql":
            Listener(ORDERS_CHANNEL, self.wake, self.stopping).start()

    # --- the main loop -----------------------------------------------------------------

    def _loop(self, pool) -> None:
        poll = conf.get().poll_interval
        claim = Claim(self.name, buckets=owned_by(self.name), alive=still_alive(self.worker))
        while not self.stopping.is_set():
            self.wake.clear()
            held = len(self.running)
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
                self._submit(pool, order)
            if claimed:
                self.beacon.mark()
            if len(claimed) < free:
                self.wake.wait(poll)

    def _submit(self, pool, order: Order) -> None:
        # The hot path: build the log fields only when the line will be written.
        if log.isEnabledFor(logging.INFO):
            log.info("%s claimed order %s (%s, priority %d, bucket %d, attempt %d)",
                     self.name, order.pk, order.kind, order.priority, order.bucket, order.attempt,
                     extra=order_fields(self.name, order))
        # Keyed by the fencing token: a stuck run and its retry on this same shop are two runs.
        token = (order.pk, order.attempt)
        run = self.running[token] = Run(order)
        run.future = pool.submit(self._process, run)
        run.future.add_done_callback(lambda ran: self._ran(token, run, ran))

    def _ran(self, token, run: Run, ran: Future) -> None:
        """The handler is over; its outcome may still be on its way to the database."""
        if ran.cancelled():  # claimed ahead, released at shutdown before it started
            self._settle(token)
            return
        if ran.exception() is not None:
            # Recording the outcome itself failed (database gone?); the lease will
            # lapse and the order will be retried elsewhere.
            log.error("%s could not record the outcome of order %s: %r", self.name, token[0], ran.exception())
            self._settle(token)
            return
        ran.result().add_done_callback(lambda recorded: self._recorded(token, run, recorded))

    def _recorded(self, token, run: Run, recorded: Future) -> None:
        if recorded.exception() is not None:
            log.error("%s could not record the outcome of order %s: %r", self.name, token[0], recorded.exception())
        elif recorded.result() is not None:
            self._log_outcome(run, recorded.result())
        self._settle(token)

    def _settle(self, token) -> None:
        self.running.pop(token, None)
        self.beacon.mark()
        if len(self.running) <= self.refill_at:
            self.wake.set()

    def _log_outcome(self, run: Run, outcome) -> None:
        level = logging.INFO if outcome else logging.WARNING
        if log.isEnabledFor(level):
            message = "%s: %s (%.2f s)" if outcome else "%s discarded its result: %s (%.2f s)"
            log.log(level, message, self.name, outcome.message, run.elapsed,
                    extra=order_fields(self.name, run.order, elapsed=round(run.elapsed, 3)))

    # --- one order ---------------------------------------------------------------------

    def _process(self, run: Run) -> Future:
        """Run one order on a pool thread; returns a future of its recorded outcome."""
        try:
            return self._run_and_record(run)
        except DatabaseError:
            # This thread's connection may be broken: drop it, so its next order gets a
            # fresh one. (Checking it after every order would cost a round trip each.)
            close_old_connections()
            raise

    def _run_and_record(self, run: Run) -> Future:
        order = run.order
        run.started, run.began = time.monotonic(), timezone.now()
        if order.expires_at is not None and run.began >= order.expires_at:
            return _done(services.expire_unstarted(order, self.name, order.attempt))
        try:
            recorded = self._run_handler(order, run.began)
        except HandlerFailed as failed:
            recorded = _done(services.fail(order, self.name, order.attempt, failed.traceback, started_at=run.began))
        except Fenced as fenced:
            log.warning("%s discarded its result: %s", self.name, fenced, extra=order_fields(self.name, order))
            recorded = _done(None)  # nothing recorded, and already said so
        run.elapsed = time.monotonic() - run.started
        return recorded

    def _run_handler(self, order: Order, began) -> Future:
        try:
            handler = get_handler(order.kind)
        except UnknownKind as error:
            raise HandlerFailed(f"UnknownKind: {error}") from None
        if handler.visibility_timeout:
            services.extend(order, self.name, order.attempt, handler.visibility_timeout)
        if not handler.atomic:
            return self.recorder.record(order, _call(handler, order), began)
        with transaction.atomic():
            result = _call(handler, order)
            outcome = services.complete(order, self.name, order.attempt, result, started_at=began)
            if not outcome:
                # Roll back the handler's writes too: another run owns this order now.
                raise Fenced(outcome.message)
            return _done(outcome)

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

    def _shut_down(self, pool) -> None:
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
        pool.shutdown(wait=False, cancel_futures=True)
        log.info("%s stopped", self.name)

    def _release_unstarted(self) -> None:
        """Orders claimed ahead that no thread has started go back to the queue now,
        for other workers to take, rather than after the grace period."""
        unstarted = [token for token, run in list(self.running.items()) if run.future.cancel()]
        if unstarted and not self.fenced_off:
            released = services.release(self.name, unstarted)
            log.info("%s released %d orders it had claimed but not started", self.name, released)

    def _settled_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running
