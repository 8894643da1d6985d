"""Joining, heartbeating and leaving: the membership of worker processes."""

import os
import socket

from django.db import transaction
from django.utils import timezone

from orders import services
from pizzaq import conf
from workers.events import record
from workers.models import EventKind, Worker, WorkerStatus


class NameTaken(RuntimeError):
    """Another live process already runs under this worker name."""


def _is_running_elsewhere(worker: Worker, now) -> bool:
    return worker.is_live and worker.heartbeat_age(now) < conf.get().worker_timeout


def register(name: str, concurrency: int = 1) -> Worker:
    """Join as ``name``: a new row, or a new incarnation of a worker that left or died."""
    now = timezone.now()
    with transaction.atomic():
        worker, created = Worker.objects.select_for_update().get_or_create(name=name)
        if not created and _is_running_elsewhere(worker, now):
            raise NameTaken(
                f"worker {name} is already running on {worker.host} (pid {worker.pid}); "
                f"its last heartbeat was {worker.heartbeat_age(now):.1f} s ago"
            )
        if not created and worker.is_live:
            # The previous incarnation went silent without being declared dead:
            # its runs are lost with it, so their orders go back to the queue.
            services.requeue_running_on(name, f"{name} restarted")
        _start_incarnation(worker, concurrency, now)
        record(EventKind.JOINED, f"{name} joined (incarnation {worker.incarnation}, "
               f"{worker.host} pid {worker.pid}, concurrency {concurrency})", worker=name)
    return worker


def _start_incarnation(worker: Worker, concurrency: int, now) -> None:
    worker.incarnation += 1
    worker.host, worker.pid, worker.concurrency = socket.gethostname(), os.getpid(), concurrency
    worker.status, worker.started_at, worker.last_heartbeat, worker.stopped_at = (
        WorkerStatus.ALIVE, now, now, None,
    )
    worker.save()


def _this_incarnation(worker: Worker):
    return Worker.objects.filter(
        pk=worker.pk, incarnation=worker.incarnation, status__in=[WorkerStatus.ALIVE, WorkerStatus.STOPPING]
    )


def heartbeat(worker: Worker) -> bool:
    """Prove this process is alive. False means it was declared dead (fenced off) or
    replaced: it must stop claiming and exit."""
    return bool(_this_incarnation(worker).update(last_heartbeat=timezone.now()))


def mark_stopping(worker: Worker) -> bool:
    return bool(_this_incarnation(worker).update(status=WorkerStatus.STOPPING))


def deregister(worker: Worker, reason: str) -> bool:
    """Leave cleanly: whatever still runs here goes back to the queue first."""
    with transaction.atomic():
        left = _this_incarnation(worker).update(status=WorkerStatus.LEFT, stopped_at=timezone.now())
        if not left:
            # Fenced off already: our orders were moved and the name may be reused.
            return False
        released = services.requeue_running_on(worker.name, f"{worker.name} left: {reason}")
        record(EventKind.LEFT, f"{worker.name} left ({reason}); {released} orders released",
               worker=worker.name, data={"released": released})
    return True
