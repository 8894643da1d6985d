"""Progress a handler reports of its run: how far it has got (a fraction from 0 to 1) and
a few words, kept on the order's row for the API and the dashboard.

A report is written under the run's fencing token, so a run that lost its order (declared
dead, its lease lapsed, cancelled) changes nothing. However often a handler reports, an
order's progress is written at most once per ``progress_interval``: a report made sooner
is held, and the latest held report goes out with the next report after the interval, or
with the worker's next heartbeat (``flush``, until the run's result is recorded),
whichever comes first.

Progress is advisory: a write the database does not take (it is away) is logged and
dropped, never raised into the handler."""

import asyncio
import logging
import math
import numbers
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.utils import timezone

from orders import conf
from orders.fence import held_by
from orders.models import Order
from orders.notify import CHANGES_CHANNEL, notify_after_commit

log = logging.getLogger("pizzaq.orders")

NOTE_LENGTH = 200


@dataclass(frozen=True)
class Report:
    """One report: the fraction done, a few words, and when it was made."""

    value: float
    note: str
    at: datetime


def checked_report(value, note: str) -> Report:
    """A report of ``value`` and ``note`` made now; ValueError or TypeError for what is not one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"progress must be a number from 0 to 1 (a fraction done), not {value!r}")
    if not isinstance(note, str):
        raise TypeError(f"a progress note must be a string, not {type(note).__name__}")
    # PostgreSQL's text cannot hold NUL, nor an unpaired surrogate (a file name read with
    # surrogateescape); the note is a few words, so it is cut to fit.
    note = note.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return Report(float(value), note[:NOTE_LENGTH], timezone.now())


class Reporter:
    """The progress reports of one run: its order's id and fencing token, its latest
    report, and what and when it last wrote (monotonic clock)."""

    def __init__(self, order: Order):
        self.order_id, self.token = order.pk, (order.worker, order.attempt)
        # The latest report, and the latest one written (or tried): the handler's thread
        # only replaces the first, so a report made during a write is never lost.
        self.latest: Report | None = None
        self.written: Report | None = None
        self.written_at = -math.inf
        # A run that lost its order never holds it again: it stops writing.
        self.lost = False
        # The handler's thread and the worker's heartbeat both write; one at a time.
        self.writing = threading.Lock()

    def report(self, value, note: str = "") -> None:
        """Take a report, and write it if the interval allows."""
        self.latest = checked_report(value, note)
        # Inside a transaction (an atomic handler) the write would show only once it
        # commits, and would lock the order's row against the worker's lease renewals
        # meanwhile; inside an event loop (an async Django task) Django allows no
        # synchronous query: either way the report stays held for the heartbeat, which
        # writes it on a connection of its own.
        if not connection.in_atomic_block and not _in_event_loop():
            self.flush()

    def flush(self) -> None:
        """Write the latest report, if it is not written yet and the interval since the last
        write is over. A write under way on another thread is not waited for: the report
        stays held for the next flush."""
        if not self.writing.acquire(blocking=False):
            return
        try:
            report = self.latest
            if report is self.written or self.lost or time.monotonic() - self.written_at < conf.get().progress_interval:
                return
            self.written, self.written_at = report, time.monotonic()
            self.lost = not self._write(report)
        finally:
            self.writing.release()

    def _write(self, report: Report) -> bool:
        """Write ``report``; False if the run no longer holds its order."""
        try:
            with transaction.atomic():
                # The fence: only while this run still holds the order.
                written = Order.objects.filter(held_by(*self.token), pk=self.order_id).update(
                    progress_value=report.value, progress_note=report.note, progress_at=report.at)
                if written:
                    # Dashboards read again on this wake-up: it goes out once the report committed.
                    notify_after_commit(CHANGES_CHANNEL)
        except (OperationalError, InterfaceError) as error:
            log.warning("progress of order %s not written, the database is away: %s", self.order_id, error)
            close_old_connections()  # a broken connection is opened afresh for the next report
            return True
        return bool(written)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def report(order: Order, value, note: str = "") -> None:
    """Report the progress of the run ``order`` was claimed for (see the module's docstring)."""
    if order.progress_reporter is None:
        order.progress_reporter = Reporter(order)
    order.progress_reporter.report(value, note)


def flush(order: Order) -> None:
    """Write what ``order``'s run reported and holds back, if its interval is over."""
    if order.progress_reporter is not None:
        order.progress_reporter.flush()
