"""Batches the results of a worker's runs: whatever finished while the previous batch was
being written goes out together in one fenced UPDATE (one commit, one WAL flush)."""

import queue
import threading
from concurrent.futures import Future

from django.db import close_old_connections

from orders import services
from orders.models import Order

MAX_BATCH = 200
_STOP = object()


class Recorder(threading.Thread):
    def __init__(self, worker: str):
        super().__init__(name=f"{worker}-recorder", daemon=True)
        self.worker = worker
        self.pending: queue.Queue = queue.Queue()

    def record(self, order: Order, result) -> services.Outcome:
        """Hand in one result and wait until it is recorded (or fenced off)."""
        future: Future = Future()
        self.pending.put((order, result, future))
        return future.result()

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
            outcomes = services.complete_many(self.worker, [(order, result) for order, result, _ in batch])
        except Exception as error:  # the database may be gone: every waiting run hears it
            close_old_connections()
            for _, _, future in batch:
                future.set_exception(error)
            return
        for order, _, future in batch:
            future.set_result(outcomes[order.pk])
