"""Batches the results of a worker's runs: whatever finished while the previous batch was
being written goes out together in one fenced UPDATE (one commit, one WAL flush).

A batch that cannot be written (the database is away) is kept and written again, with
backoff, until the database is back: the fence decides then whether each result still
counts. Only when the incarnation is over are unwritten results given up."""

import queue
import threading
from typing import Callable

from django.db import DatabaseError
from django.utils import timezone

from orders import services
from workers.contact import DatabaseContact, retry_delay

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
        failures = 0
        while True:
            try:
                outcomes = services.complete_many(self.worker, [result for _, result in self.batch])
                break
            except DatabaseError as error:
                # Retry point: the batch stays in hand until the database takes it.
                self.contact.failed("recording results", error)
                failures += 1
                if self.over.wait(retry_delay(failures)):
                    return self._give_up(error)
        self.contact.reached()
        batch, self.batch = self.batch, []
        for run, result in batch:
            self.settle(run, outcomes[result.order.pk])

    def _give_up(self, error: DatabaseError) -> None:
        """The incarnation is over: its leases lapse, and the orders run again elsewhere."""
        batch, self.batch = self.batch, []
        for run, _ in batch:
            self.settle(run, error=error)
