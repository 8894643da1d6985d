"""One incarnation of a worker: register, claim what fits from the buckets it owns, run
it on its order threads, record each outcome with the run's fencing token, heartbeat and
renew leases on the side; end (stopped, or fenced off) and shut down.

An incarnation holds up to ``concurrency + prefetch`` orders: the ones running and a few
claimed ahead, so that one claim serves many orders. It claims again once it holds half
that or fewer. Results of plain handlers are recorded in batches by the Recorder; an
order counts as held until its result is recorded (or fenced off).

It rides database outages out: claims, heartbeats, lease renewals and outcomes are tried
again with backoff until the database is back, and results whose token is still valid are
recorded then. Every side loop is supervised, and the shutdown runs in a ``finally``."""

import enum
import json
import logging
import os
import queue
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
from workers.contact import DatabaseContact, retry_delay
from workers.listener import Listener, listen_params
from workers.ownership import owned_by, still_alive
from workers.recorder import Recorder
from workers.supervision import keep_running

log = logging.getLogger("pizzaq.worker")

# Orders claimed ahead per thread unless told otherwise: a worker holds four orders per
# thread, as Celery's default prefetch multiplier has it.
DEFAULT_PREFETCH_PER_THREAD = 3


class Ending(enum.Enum):
    """Why an incarnation ended."""

    # Asked to stop (a signal): it left cleanly.
    STOPPED = "stopped"
    # It learnt it had been declared dead: its orders were moved, its results refused.
    FENCED = "fenced off"
    # A part of it kept dying: it left, giving its orders back, to start afresh.
    BROKEN = "broken"


class Fenced(Exception):
    """This run lost its order; whatever it did inside the completion transaction is undone."""


class Over(Exception):
    """The incarnation ended while an outcome still waited for the database."""


class HandlerFailed(Exception):
    """The handler raised or returned what JSON cannot hold: this attempt failed. (Errors
    recording an outcome are not the handler's: they are retried until the database is back.)"""

    def __init__(self, traceback_text: str):
        super().__init__(traceback_text.strip().splitlines()[-1])
        self.traceback = traceback_text


def _call(handler, order: Order):
    """The handler's JSON-ready result, or HandlerFailed."""
    try:
        result = handler.func(order)
        json.dumps(result, allow_nan=False)
    except BaseException:  # noqa: B036 - KeyboardInterrupt, SystemExit too: the attempt failed, the thread goes on
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


class Incarnation:
    def __init__(self, name: str, concurrency: int, capacity: int, grace: float):
        self.name, self.concurrency, self.capacity, self.grace = name, concurrency, capacity, grace
        self.refill_at = capacity // 2
        self.stopping = threading.Event()
        # Set once shutdown is over: heartbeats and lease renewals go on until then, so a
        # worker finishing its orders in the grace period is not taken for dead.
        self.over = threading.Event()
        self.wake = threading.Event()
        # Every order held, by token, from its claim until its outcome is recorded; and
        # those of them whose handler has returned and whose result waits for the recorder.
        # Claims count only the others, so a claim goes out while a batch is written.
        self.running: dict = {}
        self.recording: dict = {}
        # Claimed orders waiting for a thread. (A plain queue and long-lived threads: a
        # future per order, as an executor makes, cost more than a no-op order.)
        self.ready: queue.SimpleQueue = queue.SimpleQueue()
        self.contact = DatabaseContact(name)
        self.beacon = ChangeBeacon(self.over, self.contact)
        self.recorder = Recorder(name, self._settle, self.contact, self.over)
        self.worker = None
        self.fenced_off = self.broken = False
        # Writes waiting for the database are given up this long after a stop was asked.
        self.give_up_at = float("inf")
        # When the last heartbeat that landed was sent (monotonic clock).
        self.last_beat = time.monotonic()

    # --- lifecycle ---------------------------------------------------------------------

    def run(self) -> Ending:
        """Register, work until stopped or fenced off, shut down; why it ended."""
        self.worker = self._until_done("registering", lambda: membership.register(self.name, self.concurrency))
        if self.worker is None:
            return Ending.STOPPED
        log.info("%s started: incarnation %d, concurrency %d, holding up to %d orders, pid %d", self.name,
                 self.worker.incarnation, self.concurrency, self.capacity, os.getpid())
        try:
            self._start_side_loops()
            self._loop()
        finally:
            # Whatever ended the loop, even an error nobody foresaw, what is held goes back.
            self._shut_down()
            self.over.set()
            self.recorder.stop()
            for _ in range(self.concurrency):
                self.ready.put(None)  # each order thread ends at its None, once its run is over
        return Ending.FENCED if self.fenced_off else Ending.BROKEN if self.broken else Ending.STOPPED

    def request_stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("%s stopping (%s): no new claims", self.name, reason)
            self.give_up_at = time.monotonic() + self.grace
        self.stopping.set()
        self.wake.set()

    def _break(self, label: str) -> None:
        """A side loop keeps dying: going on without it would be going on with a part missing."""
        self.broken = True
        self.request_stop(f"{label} keeps failing")

    def _start_side_loops(self) -> None:
        loops = {f"{self.name}_{number}": self._serve for number in range(self.concurrency)}
        loops[f"{self.name}-heartbeat"] = self._heartbeat_loop
        loops[f"{self.name}-recorder"] = self.recorder.run
        if self.beacon.enabled:
            loops[f"{self.name}-beacon"] = self.beacon.run
        if connection.vendor == "postgresql" and (params := listen_params()) is not None:
            loops[f"{self.name}-listener"] = Listener(ORDERS_CHANNEL, self.wake, self.over, params, self.contact).run
        for label, loop in loops.items():
            keep_running(label, loop, self.over, on_broken=self._break)

    def _until_done(self, doing: str, write):
        """``write()``'s value once the database takes it, retried with backoff while the
        database is away; None if the incarnation is stopped or over first."""
        failures = 0
        while True:
            try:
                value = write()
            except DatabaseError as error:
                # Retry point: an outage, not a failure of the order or the worker.
                self.contact.failed(doing, error)
                failures += 1
                if self.over.wait(retry_delay(failures)) or time.monotonic() > self.give_up_at:
                    return None
                continue
            self.contact.reached()
            return value

    # --- the main loop -----------------------------------------------------------------

    def _loop(self) -> None:
        poll = conf.get().poll_interval
        claim = Claim(self.name, buckets=owned_by(self.name), alive=still_alive(self.worker))
        failures = 0
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
                # Nothing was claimed (the claim is one statement). Reconnect and go on.
                self.contact.failed("claiming", error)
                failures += 1
                self.stopping.wait(retry_delay(failures))
                continue
            failures = 0
            self.contact.reached()
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
            # The outcome was not recorded: the order's lease lapses and it runs again.
            log.error("%s could not record the outcome of order %s: %s", self.name, run.order.pk, error)
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
                self._run_and_record(run)
            except Over as over:
                self._settle(run, error=over)
            except BaseException as error:  # noqa: B036 - the thread goes on; the run is given back
                log.exception("%s: order %s broke its thread", self.name, run.order.pk)
                try:
                    self._give_back(run, f"the worker failed while running it: {error!r}")
                finally:
                    self._settle(run)  # never held for ever, its lease renewed by the heartbeat

    def _run_and_record(self, run: Run) -> None:
        order = run.order
        if not self._in_contact():
            self._settle(run, error=Over("the worker lost contact with the database before it started"))
            return
        run.started, run.began = time.monotonic(), timezone.now()
        if order.expires_at is not None and run.began >= order.expires_at:
            self._settle(run, self._write("expiring an order", services.expire_unstarted, order))
            return
        try:
            outcome = self._run_handler(run)
        except HandlerFailed as failed:
            run.elapsed = time.monotonic() - run.started
            outcome = self._write("recording a failure", services.fail, order, failed.traceback,
                                  started_at=run.began)
        except Fenced as fenced:
            log.warning("%s discarded its result: %s", self.name, fenced, extra=order_fields(self.name, order))
            self._settle(run)
            return
        except DatabaseError as error:
            # The completion transaction of an atomic handler did not commit (or we cannot
            # tell): its writes are undone, so the order goes back without using a try. The
            # fence refuses this if the commit did land after all.
            self.contact.failed("completing an order", error)
            self._give_back(run, f"its completion did not reach the database: {error}")
            return
        if outcome is not None:  # None: the recorder has it and settles it once written
            self._settle(run, outcome)

    def _write(self, doing: str, change, order: Order, *args, **kwargs):
        """A fenced change to ``order`` for this run, retried until the database takes it."""
        outcome = self._until_done(doing, lambda: change(order, self.name, order.attempt, *args, **kwargs))
        if outcome is None:
            raise Over(f"the incarnation ended before {doing} reached the database")
        return outcome

    def _give_back(self, run: Run, reason: str) -> None:
        released = self._until_done("releasing an order", lambda: services.release(self.name, [run.token], reason))
        self._settle(run, error=None if released is not None else Over(reason))

    def _in_contact(self) -> bool:
        """Whether a run may start: this worker's last heartbeat is recent enough that it
        cannot have been declared dead since. While it is not (an outage, a partition) the
        run waits; False if the incarnation ends first (its runs would be refused)."""
        settings = conf.get()
        limit = max(settings.heartbeat_interval * 2, settings.worker_timeout - settings.heartbeat_interval)
        while time.monotonic() - self.last_beat > limit:
            if self.over.wait(0.05) or self.fenced_off:
                return False
        return not self.fenced_off

    def _run_handler(self, run: Run):
        """Run the order's handler: its Outcome if it was recorded here (an atomic handler
        completes in its own transaction), None if it went to the recorder."""
        order = run.order
        try:
            handler = get_handler(order.kind)
        except UnknownKind as error:
            raise HandlerFailed(f"UnknownKind: {error}") from None
        if handler.visibility_timeout:
            self._write("extending a lease", services.extend, order, handler.visibility_timeout)
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
        failures = 0
        while not self.over.wait(retry_delay(failures) if failures else interval):
            sent = time.monotonic()
            try:
                alive = membership.heartbeat(self.worker)
                if alive:
                    self.last_beat = sent
                    self._renew_leases()
                    self.beacon.mark()
            except DatabaseError as error:
                # Retry point: a heartbeat that cannot land is tried again soon, so the
                # worker is heard again as soon as the database is back.
                self.contact.failed("heartbeating", error)
                failures += 1
                continue
            failures = 0
            self.contact.reached()
            if not alive:
                self._fenced()
                return
        close_old_connections()

    def _fenced(self) -> None:
        self.fenced_off = True
        log.error("%s was declared dead and its orders were moved elsewhere; discarding the results of "
                  "its %d runs", self.name, len(self.running))
        self.request_stop("fenced off")

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
        self.stopping.set()
        if self.fenced_off:
            # Its runs were requeued when it was declared dead; their late results would be
            # refused, so there is nothing to wait for.
            self._drain_ready()
            return
        self._until_done("stopping", lambda: membership.mark_stopping(self.worker))
        self._release_unstarted()
        if not self._settled_within(self.grace):
            log.warning("%s: %d orders still running after %.0f s grace; releasing them", self.name,
                        len(self.running), self.grace)
        reason = "broken: a part kept failing" if self.broken else "stopped"
        self._until_done("leaving", lambda: membership.deregister(self.worker, reason))
        log.info("%s stopped", self.name)

    def _drain_ready(self) -> list[Run]:
        """Take the runs claimed ahead that no thread has started."""
        unstarted = []
        while True:
            try:
                unstarted.append(self.ready.get_nowait())
            except queue.Empty:
                break
        for run in unstarted:
            self.running.pop(run.token, None)
        return unstarted

    def _release_unstarted(self) -> None:
        """Orders claimed ahead that no thread has started go back to the queue now,
        for other workers to take, rather than after the grace period."""
        unstarted = self._drain_ready()
        if not unstarted:
            return
        released = self._until_done("releasing orders", lambda: services.release(
            self.name, [run.token for run in unstarted], f"claimed ahead by {self.name}; not started before it stopped"))
        log.info("%s released %d orders it had claimed but not started", self.name, released or 0)

    def _settled_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running
