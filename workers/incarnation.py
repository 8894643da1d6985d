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
import math
import os
import queue
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from orders import limits, reporting, services
from orders.claiming import Claim
from orders.handlers import UnknownKind, get_handler
from orders.models import Order
from orders.notify import CANCEL_CHANNEL, ORDERS_CHANNEL
from orders import conf
from orders.logformat import order_fields
from workers import membership
from workers.beacon import ChangeBeacon
from workers.contact import DatabaseContact, GaveUp, retry_delay
from workers.listener import Listener, listen_params
from workers.ownership import still_alive, territory
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


class HandlerFailed(Exception):
    """The handler raised or returned what JSON cannot hold: this attempt failed. (Errors
    recording an outcome are not the handler's: they are retried until the database is back.)"""

    def __init__(self, traceback_text: str, error: BaseException):
        super().__init__(traceback_text.strip().splitlines()[-1])
        self.traceback, self.error = traceback_text, error


def _call(handler, order: Order):
    """The handler's JSON-ready result, or HandlerFailed."""
    try:
        result = handler.func(order)
        json.dumps(result, allow_nan=False)
    except BaseException as error:  # noqa: B036 - KeyboardInterrupt, SystemExit too: the attempt failed, the thread goes on
        raise HandlerFailed(traceback.format_exc(), error) from None
    return result


def _lost_the_database(error: BaseException) -> bool:
    """Whether ``error`` is the database going away under a run, rather than the run's own
    fault (a statement of its own that timed out leaves the connection usable)."""
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    return connection.connection is None or not connection.is_usable()


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
    def __init__(self, name: str, concurrency: int, capacity: int, grace: float, queues=()):
        self.name, self.concurrency, self.capacity, self.grace = name, concurrency, capacity, grace
        self.queues = tuple(queues)  # empty: every queue
        self.refill_at = capacity // 2
        self.stopping = threading.Event()
        # Set once shutdown is over: heartbeats and lease renewals go on until then, so a
        # worker finishing its orders in the grace period is not taken for dead.
        self.over = threading.Event()
        self.wake = threading.Event()
        # Every order held, by token, from its claim until its outcome is recorded; and
        # those of them whose handler has returned and whose result waits for the recorder.
        # Claims count only the others, so a claim goes out while a batch is written; but
        # never more than twice the capacity is held in all, so results the database is
        # slow to take hold claims back instead of piling up (each held order's lease is
        # renewed, which would slow the recording further).
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
        # Writes waiting for the database are given up at this time (monotonic): a grace
        # period after a stop was asked.
        self.give_up_at = math.inf
        # When the last heartbeat that landed was sent (monotonic clock), and how old it may
        # be for a run to start: older, and this worker may have been declared dead since.
        self.last_beat = 0.0
        settings = conf.get()
        self.beat_too_old = max(settings.heartbeat_interval * 2, settings.worker_timeout - settings.heartbeat_interval)

    # --- lifecycle ---------------------------------------------------------------------

    def _join(self):
        # This deployment's PIZZAQ_LIMITS hold cluster-wide from the moment it starts.
        limits.sync_from_settings()
        return membership.register(self.name, self.concurrency, self.queues)

    def run(self) -> Ending:
        """Register, work until stopped or fenced off, shut down; why it ended."""
        try:
            self.worker = self._until_done("registering", self._join)
        except GaveUp:
            return Ending.STOPPED
        self.last_beat = time.monotonic()
        log.info("%s started: incarnation %d, concurrency %d, holding up to %d orders, pid %d", self.name,
                 self.worker.incarnation, self.concurrency, self.capacity, os.getpid())
        try:
            self._start_side_loops()
            self._loop()
        finally:
            # Whatever ended the loop, even an error nobody foresaw, what is held goes back,
            # and every part of this incarnation ends, even if shutting down failed too.
            try:
                self._shut_down()
            finally:
                self._end()
        return Ending.FENCED if self.fenced_off else Ending.BROKEN if self.broken else Ending.STOPPED

    def request_stop(self, reason: str) -> None:
        if not self.stopping.is_set():
            log.info("%s stopping (%s): no new claims", self.name, reason)
        self.give_up_at = min(self.give_up_at, time.monotonic() + self.grace)
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
            on_notify = {ORDERS_CHANNEL: lambda _: self.wake.set(), CANCEL_CHANNEL: self._cancelled}
            loops[f"{self.name}-listener"] = Listener(on_notify, self.wake.set, self.over, params, self.contact).run
        for label, loop in loops.items():
            keep_running(label, loop, self.over, on_broken=self._break)

    def _end(self) -> None:
        self.over.set()
        self.recorder.stop()
        for _ in range(self.concurrency):
            self.ready.put(None)  # each order thread ends at its None, once its run is over

    def _until_done(self, doing: str, write):
        """``write()``'s value once the database takes it; GaveUp once the incarnation is
        over, or a grace period after a stop was asked."""
        return self.contact.until_done(doing, write, self.over, lambda: self.give_up_at)

    # --- the main loop -----------------------------------------------------------------

    def _loop(self) -> None:
        poll = conf.get().poll_interval
        claim = Claim(self.name, mine=territory(self.name), alive=still_alive(self.worker), queues=self.queues or None)
        failures = 0
        while not self.stopping.is_set():
            self.wake.clear()
            free = self._room()
            if free < 1:
                self.wake.wait(poll)
                continue
            try:
                if failures:
                    self._release_lost_claims()  # before claiming: every order held is in running
                claimed = claim(free)
            except DatabaseError as error:
                # Retry point. The claim is one statement: it took nothing, or it committed
                # and its answer was lost (then its orders are given back once we are back).
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

    def _release_lost_claims(self) -> None:
        """Orders a claim took as the database went away, whose answer never came: the
        database says this worker runs them, nobody here does. Give them back now (no try
        used) rather than let their leases lapse. Claims are made on this thread only, so
        every order this incarnation holds is in ``running``."""
        released = services.release_unheld(self.name, set(self.running),
                                           f"claimed by {self.name} as the database went away; its answer was lost")
        if released:
            log.warning("%s gave back %d orders claimed as the database went away", self.name, released)

    def _submit(self, order: Order) -> None:
        # The hot path: build the log fields only when the line will be written. A claim
        # is a DEBUG line: at the default level a run is one line, when it ends (its fields
        # say who claimed it): writing two lines per order cost a drain about a third.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s claimed order %s (%s, priority %d, bucket %d, attempt %d)",
                     self.name, order.pk, order.kind, order.priority, order.bucket, order.attempt,
                     extra=order_fields(self.name, order))
        run = Run(order)
        self.running[run.token] = run
        self.ready.put(run)

    def _settle(self, run: Run, outcome=None, error=None) -> None:
        """The run is over and its outcome recorded (or refused, or given up with ``error``)."""
        if error is not None:
            # Not recorded: the order's lease lapses (or it was moved already) and it runs again.
            log.warning("%s gave up on order %s: %s", self.name, run.order.pk, error)
        elif outcome is not None:
            self._log_outcome(run, outcome)
        self.running.pop(run.token, None)
        self.recording.pop(run.token, None)
        self.beacon.mark()
        if self._room() > 0:
            self.wake.set()

    def _unfinished(self) -> int:
        """Orders held whose handler has not returned yet."""
        return len(self.running) - len(self.recording)

    def _room(self) -> int:
        """How many orders the next claim may take: none until the orders still to run are
        down to half the capacity, and never more than twice the capacity held in all."""
        unfinished = self._unfinished()
        if unfinished > self.refill_at:
            return 0
        return min(self.capacity - unfinished, 2 * self.capacity - len(self.running))

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
            except GaveUp as gave_up:
                self._settle(run, error=gave_up)
            except BaseException as error:  # noqa: B036 - the thread goes on; the run is given back
                log.exception("%s: order %s broke its thread", self.name, run.order.pk)
                try:
                    self._give_back(run, f"the worker failed while running it: {error!r}")
                finally:
                    self._settle(run)  # never held for ever, its lease renewed by the heartbeat

    def _run_and_record(self, run: Run) -> None:
        if not self._may_start_runs():
            raise GaveUp("the worker lost touch with the database before the run could start")
        run.started, run.began = time.monotonic(), timezone.now()
        order = run.order
        if order.expires_at is not None and run.began >= order.expires_at:
            self._settle(run, self._write("expiring an order", services.expire_unstarted, order))
            return
        try:
            outcome = self._run_handler(run)
        except HandlerFailed as failed:
            outcome = self._record_failure(run, failed)
        except Fenced as fenced:
            log.warning("%s discarded its result: %s", self.name, fenced, extra=order_fields(self.name, order))
            outcome = None
            self._settle(run)
        except DatabaseError as error:
            # The completion transaction of an atomic handler did not commit (or we cannot
            # tell): its writes are undone, so the order goes back without using a try. The
            # fence refuses this if the commit did land after all.
            self.contact.failed("completing an order", error)
            outcome = self._give_back(run, f"its completion did not reach the database: {error}")
        if outcome is not None:  # None: settled already, or the recorder has it
            self._settle(run, outcome)

    def _record_failure(self, run: Run, failed: HandlerFailed):
        """The attempt failed: record it, unless what failed was the database under it (an
        outage must not use up the order's tries): then it goes back, no try used."""
        run.elapsed = time.monotonic() - run.started
        if _lost_the_database(failed.error):
            self.contact.failed("running a handler", failed.error)
            return self._give_back(run, f"the database went away under its handler: {failed}")
        return self._write("recording a failure", services.fail, run.order, failed.traceback,
                           started_at=run.began)

    def _write(self, doing: str, change, order: Order, *args, **kwargs):
        """A fenced change to ``order`` for this run, retried until the database takes it."""
        return self._until_done(doing, lambda: change(order, self.name, order.attempt, *args, **kwargs))

    def _give_back(self, run: Run, reason: str) -> None:
        """Release the run's order (no try used) once the database takes it, and settle it."""
        try:
            self._until_done("releasing an order", lambda: services.release(self.name, [run.token], reason))
        except GaveUp as gave_up:
            return self._settle(run, error=gave_up)
        log.warning("%s gave order %s back: %s", self.name, run.order.pk, reason)
        self._settle(run)

    def _may_start_runs(self) -> bool:
        """Whether a run may start: this worker's last heartbeat is recent enough that it
        cannot have been declared dead since. While it is not (an outage, a partition) the
        run waits; False if the incarnation ends first (its runs would be refused)."""
        while time.monotonic() - self.last_beat > self.beat_too_old:
            if self.over.wait(0.05) or self.fenced_off:
                return False
        return not self.fenced_off

    def _run_handler(self, run: Run):
        """Run the order's handler: its Outcome if it was recorded here (an atomic handler
        completes in its own transaction), None if it went to the recorder."""
        handler = self._handler_of(run.order)
        if handler.visibility_timeout:
            self._write("extending a lease", services.extend, run.order, handler.visibility_timeout)
        if handler.atomic:
            return self._run_atomic(run, handler)
        result = _call(handler, run.order)
        run.elapsed = time.monotonic() - run.started
        self.recording[run.token] = run
        if self._room() > 0:
            self.wake.set()  # the claim loop may claim again while this is written
        self.recorder.record(run, result)
        return None

    @staticmethod
    def _handler_of(order: Order):
        try:
            return get_handler(order.kind)
        except UnknownKind as error:
            raise HandlerFailed(f"UnknownKind: {error}", error) from None

    def _run_atomic(self, run: Run, handler):
        with transaction.atomic():
            result = _call(handler, run.order)
            outcome = services.complete(run.order, self.name, run.order.attempt, result, started_at=run.began)
            if not outcome:
                # Roll back the handler's writes too: another run owns this order now.
                raise Fenced(outcome.message)
        run.elapsed = time.monotonic() - run.started
        return outcome

    # --- heartbeat, leases and shutdown ------------------------------------------------

    def _heartbeat_loop(self) -> None:
        interval = conf.get().heartbeat_interval
        failures = 0
        due = time.monotonic() + interval
        while not self.over.wait(max(0.0, due - time.monotonic())):
            sent = time.monotonic()
            # Beats go out at a fixed rate, so a slow one does not push the next one later.
            due = sent + interval
            try:
                alive = self._beat(sent)
            except DatabaseError as error:
                # Retry point: a heartbeat that cannot land is tried again soon, so the
                # worker is heard again as soon as the database is back.
                self.contact.failed("heartbeating", error)
                failures += 1
                due = time.monotonic() + retry_delay(failures)
                continue
            failures = 0
            self.contact.reached()
            if not alive:
                return self._fenced()

    def _beat(self, sent: float) -> bool:
        alive = membership.heartbeat(self.worker)
        if alive:
            self.last_beat = sent
            self._renew_leases()
            self._look_for_cancels()
            self._flush_progress()
            self.beacon.mark()
        return alive

    def _cancelled(self, order_id: str) -> None:
        """Someone cancelled ``order_id`` while it runs: tell its handler, if it runs here."""
        for run in list(self.running.values()):
            if str(run.order.pk) == order_id:
                run.order.request_cancel()
                log.info("%s: order %s was cancelled while running; its handler was told", self.name, order_id)

    def _look_for_cancels(self) -> None:
        """Cancels whose NOTIFY did not come (no LISTEN here, or it was down) are found by
        the heartbeat."""
        running = {run.order.pk for run in list(self.running.values()) if not run.order.cancel_requested()}
        for order_id in services.cancelled_among(running) if running else ():
            self._cancelled(str(order_id))

    def _flush_progress(self) -> None:
        """Progress a handler reported too soon after its last write goes out now (once its
        interval is over), so a handler that reports and then works on quietly still shows
        where it stands; and so does an atomic handler, whose reports wait for this."""
        for run in list(self.running.values()):
            reporting.flush(run.order)

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
        """Give back what is held and leave, within a grace period however the database is."""
        self.request_stop("shutting down")
        if self.fenced_off:
            # Its runs were requeued when it was declared dead; their late results would be
            # refused, so there is nothing to wait for.
            self._drain_ready()
            return
        self._try_to("mark itself stopping", lambda: membership.mark_stopping(self.worker))
        self._release_unstarted()
        if not self._settled_by(self.give_up_at):
            log.warning("%s: %d orders still running after %.0f s grace; releasing them", self.name,
                        len(self.running), self.grace)
        reason = "broken: a part kept failing" if self.broken else "stopped"
        self._try_to("leave", lambda: membership.deregister(self.worker, reason))
        log.info("%s stopped", self.name)

    def _try_to(self, doing: str, write) -> None:
        """A shutdown step; if the database stays away, the notifier will do it instead."""
        try:
            self._until_done(doing, write)
        except GaveUp as gave_up:
            log.warning("%s did not %s: %s; the notifier will see to it", self.name, doing, gave_up)

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
        if unstarted := self._drain_ready():
            reason = f"claimed ahead by {self.name}; not started before it stopped"
            self._try_to(f"release {len(unstarted)} orders it had claimed but not started", lambda: services.release(
                self.name, [run.token for run in unstarted], reason))

    def _settled_by(self, deadline: float) -> bool:
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running
