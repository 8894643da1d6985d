"""Batches the results of a worker's runs: whatever finished while the previous batch was
being written goes out together in one fenced UPDATE (one commit, one WAL flush).

A batch that cannot be written (the database is away) is kept and written again, with
backoff, until the database is back: the fence decides then whether each result still
counts. Only when the incarnation is over are unwritten results given up."""

import logging
import queue
import threading
from typing import Callable

from django.utils import timezone

from orders import services
from workers.contact import DatabaseContact, GaveUp

log = logging.getLogger("pizzaq.worker")

MAX_BATCH = 500
_STOP = object()


class Recorder:
    """Writes results handed in by ``record`` and reports each one to ``settle(run,
    outcome, error)``: the Outcome (won, or fenced off), or the error that kept it from
    being written. ``run`` is its loop, for a supervised thread: if it dies, the batch in
    hand is kept, and the restarted loop writes it first."""

    def __init__(self, worker: str, settle: Callable, contact: DatabaseContact, over: threading.Event):
        self.worker, self.settle, self.contact, self.over = worker, settle, contact, over
        self.pending: queue.SimpleQueue = queue.SimpleQueue()
        self.batch: list = []

    def record(self, run, result) -> None:
        """Hand in the result of ``run``, whose handler returned just now."""
        self.pending.put((run, services.RunResult(run.order, result, run.began, timezone.now())))

    def stop(self) -> None:
        self.pending.put(_STOP)

    def run(self) -> None:
        while self.batch or self._take_batch():
            self._write_until_done()

    def _take_batch(self) -> bool:
        """Block for one result, then take whatever else is already waiting; False at the stop."""
        first = self.pending.get()
        if first is _STOP:
            return False
        self.batch = [first]
        while len(self.batch) < MAX_BATCH:
            try:
                item = self.pending.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self.pending.put(_STOP)  # finish this batch first, then stop
                break
            self.batch.append(item)
        return True

    def _write_until_done(self) -> None:
        results = [result for _, result in self.batch]
        try:
            outcomes = self.contact.until_done(
                "recording results", lambda: services.complete_many(self.worker, results), self.over)
        except GaveUp as gave_up:
            # The incarnation is over: its leases lapse, and the orders run again elsewhere.
            outcomes = {result.order.pk: gave_up for result in results}
        batch, self.batch = self.batch, []
        for run, result in batch:
            self._settle_one(run, outcomes[result.order.pk])

    def _settle_one(self, run, outcome) -> None:
        # One run's trouble must not leave the rest of the batch held for ever.
        try:
            if isinstance(outcome, GaveUp):
                self.settle(run, error=outcome)
            else:
                self.settle(run, outcome)
        except Exception:
            log.exception("%s could not settle order %s", self.worker, run.order.pk)
