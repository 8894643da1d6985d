"""Batches the results of a worker's runs: whatever finished while the previous batch was
being written goes out together in one fenced UPDATE (one commit, one WAL flush)."""

import queue
import threading
from typing import Callable

from django.db import close_old_connections
from django.utils import timezone

from orders import services

MAX_BATCH = 500
_STOP = object()


class Recorder(threading.Thread):
    """Writes results handed in by ``record`` and reports each one to ``settle(run,
    outcome, error)``: the Outcome (won, or fenced off), or the error that kept it from
    being written."""

    def __init__(self, worker: str, settle: Callable):
        super().__init__(name=f"{worker}-recorder", daemon=True)
        self.worker, self.settle = worker, settle
        self.pending: queue.SimpleQueue = queue.SimpleQueue()

    def record(self, run, result) -> None:
        """Hand in the result of ``run``, whose handler returned just now."""
        self.pending.put((run, services.RunResult(run.order, result, run.began, timezone.now())))

    def stop(self) -> None:
        self.pending.put(_STOP)

    def run(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._write(batch)
        close_old_connections()

    def _next_batch(self):
        """Block for one result, then take whatever else is already waiting."""
        first = self.pending.get()
        if first is _STOP:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                item = self.pending.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self.pending.put(_STOP)  # finish this batch first, then stop
                break
            batch.append(item)
        return batch

    def _write(self, batch) -> None:
        try:
            outcomes = services.complete_many(self.worker, [result for _, result in batch])
        except Exception as error:  # the database may be gone: every waiting run hears it
            close_old_connections()
            for run, _ in batch:
                self.settle(run, error=error)
            return
        for run, result in batch:
            self.settle(run, outcomes[result.order.pk])
