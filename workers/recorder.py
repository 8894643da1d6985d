"""Batches the results of a worker's runs: whatever finished while the previous batch was
being written goes out together in one fenced UPDATE (one commit, one WAL flush)."""

import queue
import threading
from concurrent.futures import Future

from django.db import close_old_connections
from django.utils import timezone

from orders import services
from orders.models import Order

MAX_BATCH = 200
_STOP = object()


class Recorder(threading.Thread):
    def __init__(self, worker: str):
        super().__init__(name=f"{worker}-recorder", daemon=True)
        self.worker = worker
        self.pending: queue.Queue = queue.Queue()

    def record(self, order: Order, result, started_at) -> Future:
        """Hand in the result of a run whose handler began at ``started_at`` and returned
        just now; the future says when it is recorded (or fenced off)."""
        future: Future = Future()
        self.pending.put((services.RunResult(order, result, started_at, timezone.now()), future))
        return future

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
            outcomes = services.complete_many(self.worker, [run for run, _ in batch])
        except Exception as error:  # the database may be gone: every waiting run hears it
            close_old_connections()
            for _, future in batch:
                future.set_exception(error)
            return
        for run, future in batch:
            future.set_result(outcomes[run.order.pk])
