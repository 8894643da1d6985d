"""Joining, heartbeating, leaving and dying: the membership of worker processes.

Every change goes through ``change_membership``, the one home of the rule: under the
membership lock, the change, the buckets following the ring, and the Event that records
it, in one transaction, so the audit trail (and the log) show only what committed.
"""

import os
import socket
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from orders import services
from orders.services import Outcome
from orders import conf
from workers.events import record
from workers.models import LIVE, EventKind, Worker, WorkerStatus
from workers.ownership import describe_moves, lock_membership, moved_buckets, queued_orders_following, rebalance


def change_membership(make, describe):
    """Make one membership change: ``make()`` changes the workers' rows (a falsy result:
    there was nothing to change, and nothing else happens), then the buckets follow the
    ring, and ``describe(made, moves)`` gives the Event's fields (empty: nothing to record).
    Returns ``(made, event)``, the Event recorded or None."""
    with transaction.atomic():
        lock_membership()  # one change at a time: two rebalances never interleave
        if not (made := make()):
            return made, None
        fields = describe(made, rebalance())
        return made, record(**fields) if fields else None


def _moves(changes) -> str:
    return describe_moves(changes, queued_orders_following(changes))


class NameTaken(RuntimeError):
    """Another live process already runs under this worker name."""


def _this_host() -> str:
    return conf.get().hostname or socket.gethostname()


def _is_running_elsewhere(worker: Worker, now) -> bool:
    # Our own live row is not a rival: a registration whose answer was lost, or an
    # incarnation of ours that could not leave while the database was away.
    ours = (worker.host, worker.pid) == (_this_host(), os.getpid())
    return worker.is_live and not ours and worker.heartbeat_age(now) < conf.get().worker_timeout


def register(name: str, concurrency: int = 1, queues=()) -> Worker:
    """Join as ``name``, serving ``queues`` (empty: every queue): a new row, or a new
    incarnation of a worker that left or died. The newcomer takes its share of the
    buckets at once."""
    worker, _ = change_membership(lambda: _join(name, concurrency, sorted(set(queues))), lambda worker, changes: {
        "kind": EventKind.JOINED, "worker": name, "data": {"buckets": moved_buckets(changes)},
        "message": f"{name} joined (incarnation {worker.incarnation}, {worker.host} pid {worker.pid}, "
                   f"concurrency {concurrency}, {_serving(worker)}); took {len(changes)} buckets"})
    return worker


def _serving(worker: Worker) -> str:
    return f"queues {', '.join(worker.queues)}" if worker.queues else "every queue"


def _join(name: str, concurrency: int, queues: list[str]) -> Worker:
    now = timezone.now()
    worker, created = Worker.objects.select_for_update().get_or_create(name=name)
    if not created and _is_running_elsewhere(worker, now):
        raise NameTaken(
            f"worker {name} is already running on {worker.host} (pid {worker.pid}); "
            f"its last heartbeat was {worker.heartbeat_age(now):.1f} s ago"
        )
    if not created and worker.is_live:
        # The previous incarnation went silent without being declared dead (or is our
        # own, gone): its runs are lost with it, so their orders go back to the queue.
        services.requeue_running_on(name, f"{name} restarted")
    _start_incarnation(worker, concurrency, queues, now)
    return worker


def _start_incarnation(worker: Worker, concurrency: int, queues: list[str], now) -> None:
    worker.incarnation += 1
    worker.host, worker.pid, worker.concurrency, worker.queues = _this_host(), os.getpid(), concurrency, queues
    worker.status, worker.started_at, worker.last_heartbeat, worker.stopped_at = (
        WorkerStatus.ALIVE, now, now, None,
    )
    # Only what a new incarnation changes: its territory is the rebalance's to write.
    worker.save(update_fields=["incarnation", "host", "pid", "concurrency", "queues", "status", "started_at",
                               "last_heartbeat", "stopped_at"])


def _this_incarnation(worker: Worker):
    return Worker.objects.filter(pk=worker.pk, incarnation=worker.incarnation, status__in=LIVE)


def heartbeat(worker: Worker) -> bool:
    """Prove this process is alive. False means it was declared dead (fenced off) or
    replaced: it must stop claiming and exit."""
    return bool(_this_incarnation(worker).update(last_heartbeat=timezone.now()))


def mark_stopping(worker: Worker) -> bool:
    """A stopping worker claims nothing new, so its buckets go to the others now."""
    stopping, _ = change_membership(
        lambda: _this_incarnation(worker).update(status=WorkerStatus.STOPPING),
        lambda _, changes: changes and {"kind": EventKind.REASSIGNED, "worker": worker.name,
                                        "message": f"{worker.name} is stopping: " + _moves(changes),
                                        "data": {"buckets": moved_buckets(changes)}})
    return bool(stopping)


def deregister(worker: Worker, reason: str) -> bool:
    """Leave cleanly: whatever still runs here goes back to the queue first. False if it
    was fenced off already (its orders were moved, and the name may be reused)."""

    def leave():
        if not _this_incarnation(worker).update(status=WorkerStatus.LEFT, stopped_at=timezone.now()):
            return None
        return {"released": services.requeue_running_on(worker.name, f"{worker.name} left: {reason}")}

    left, _ = change_membership(leave, lambda left, changes: {
        "kind": EventKind.LEFT, "worker": worker.name, "data": {**left, "buckets": moved_buckets(changes)},
        "message": f"{worker.name} left ({reason}); {left['released']} running orders released; " + _moves(changes)})
    return bool(left)


@dataclass(frozen=True)
class Death:
    """Why a worker is being declared dead, and who says so."""

    kind: str
    reason: str
    actor: str = "notifier"


def declare_dead(name: str, death: Death, *, silent_since=None) -> Outcome:
    """Fence ``name`` off: mark it dead, close its pinned orders, requeue its running ones
    and hand its buckets to the ring's choice, in one transaction.

    With ``silent_since``, only if its last heartbeat is still that old (a heartbeat
    that lands first wins, and the worker lives)."""

    def bury():
        victim = Worker.objects.filter(name=name, status__in=LIVE)
        if silent_since is not None:
            victim = victim.filter(last_heartbeat__lt=silent_since)
        if not victim.update(status=WorkerStatus.DEAD, stopped_at=timezone.now()):
            return None
        return {"closed": services.close_pinned(name), "requeued": services.requeue_running_on(name, death.reason)}

    def describe(counts, changes):
        moved = queued_orders_following(changes)
        return {"kind": death.kind, "worker": name, "actor": death.actor,
                "data": {**counts, "moved": dict(moved), "buckets": moved_buckets(changes)},
                "message": f"{death.reason}: declared dead; {counts['requeued']} running orders requeued, "
                           f"{counts['closed']} pinned orders closed; " + describe_moves(changes, moved)}

    buried, event = change_membership(bury, describe)
    if not buried:
        return Outcome(False, f"worker {name} is not alive" if silent_since is None else f"{name} is alive")
    return Outcome(True, event.message)


def force_fail(name: str, actor: str) -> Outcome:
    """What a detected death does, at once, on a person's say-so."""
    if not Worker.objects.filter(name=name).exists():
        return Outcome(False, f"no worker {name}")
    return declare_dead(name, Death(EventKind.FORCE_FAILED, f"{name} force-failed by {actor}", actor))
