"""Every state change of an order. Each is one conditional UPDATE that says whether it won.

Workers hold a fencing token, the pair (worker, attempt) set by their claim. Completing,
failing, extending and releasing are conditional on that token, so a run that lost its
order (declared dead, lease lapsed) changes nothing and must discard its result.
"""

import functools
import json
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from orders import conf
from orders.claiming import Claim
from orders.fence import held_by, held_sql, held_tokens
from orders.history import AppendAttempt, append_sql_postgresql
from orders.models import Order, Status
from orders.notify import CANCEL_CHANNEL, notify_after_commit
from orders.placing import Group, place_chain, place_group, place_order, place_orders
from orders.prepared import execute_planned, local_settings, prepared_cursor
from orders.specs import OrderRejected, OrderSpec
from orders.tally import record_pruned

__all__ = [
    "Outcome", "OrderRejected", "OrderSpec", "Group", "place_order", "place_orders", "place_group", "place_chain", "RunResult", "complete",
    "complete_many", "expire_unstarted", "fail", "extend", "cancel", "retry", "requeue", "expire_overdue",
    "requeue_lapsed", "requeue_running_on", "release", "release_unheld", "close_pinned", "close_orphaned_pins",
    "renew_leases", "prune_finished", "backoff_delay",
]

log = logging.getLogger("pizzaq.orders")

PRUNE_BATCH = 5000


@dataclass(frozen=True)
class Outcome:
    """Whether a state change won, and what happened, in words a person can read."""

    won: bool
    message: str

    def __bool__(self) -> bool:
        return self.won


# --- finishing an attempt (fenced) -----------------------------------------------------


def _holding(order: Order, worker: str, attempt: int):
    """The order's row, if and only if (worker, attempt) still holds it."""
    return Order.objects.filter(held_by(worker, attempt), pk=order.pk)


def _fenced_message(order: Order, worker: str, attempt: int) -> str:
    current = Order.objects.filter(pk=order.pk).values("status", "worker", "attempt").first()
    if current is None:
        return f"order {order.pk} no longer exists"
    return (
        f"order {order.pk} attempt {attempt} by {worker} was fenced off: it is now "
        f"{current['status']} (worker {current['worker'] or '-'}, attempt {current['attempt']})"
    )


def _fenced_update(order: Order, token: tuple[str, int], won_message: str, **fields) -> Outcome:
    if _holding(order, *token).update(**fields):
        return Outcome(True, won_message)
    return Outcome(False, _fenced_message(order, *token))


@dataclass(frozen=True)
class RunResult:
    """What a run returned, and when its handler began and returned."""

    order: Order
    result: object
    started_at: object
    finished_at: object


def complete(order: Order, worker: str, attempt: int, result=None, *, started_at=None, finished_at=None) -> Outcome:
    """Record the result of a run that still holds its token. ``started_at`` and
    ``finished_at``: when its handler began and returned (default: when it was claimed,
    and now); an order claimed ahead may have waited for a thread in between."""
    now = finished_at or timezone.now()
    began = {} if started_at is None else {"started_at": started_at}
    return _fenced_update(
        order, (worker, attempt), f"order {order.pk} done",
        status=Status.DONE, result=result, finished_at=now, lease_expires_at=None,
        history=AppendAttempt(now, "done", started=started_at), **began,
    )


def complete_many(worker: str, finished: list[RunResult]) -> dict:
    """Record many results of ``worker``'s runs at once, each still fenced by its own
    (worker, attempt): {order id: Outcome}. On PostgreSQL one UPDATE and one commit for the
    whole batch, instead of a commit (a WAL flush) per order."""
    if connection.vendor != "postgresql":
        with transaction.atomic():
            return {run.order.pk: complete(run.order, worker, run.order.attempt, run.result,
                                           started_at=run.started_at, finished_at=run.finished_at)
                    for run in finished}
    won = _complete_batch_postgresql(worker, finished)
    return {
        run.order.pk: Outcome(True, f"order {run.order.pk} done") if run.order.pk in won
        else Outcome(False, _fenced_message(run.order, worker, run.order.attempt))
        for run in finished
    }


def _complete_batch_postgresql(worker: str, finished: list[RunResult]) -> set:
    with prepared_cursor() as cursor:
        rows = execute_planned(cursor, COMPLETE_BATCH_PLAN, complete_batch_sql(), complete_batch_params(worker, finished))
    return {row[0] for row in rows}


def complete_batch_params(worker: str, finished: list[RunResult]) -> list:
    """``complete_batch_sql``'s parameters for ``worker``'s ``finished`` runs."""
    columns = (
        [run.order.pk for run in finished], [run.order.attempt for run in finished],
        # None stays SQL NULL, as complete() stores it.
        [None if run.result is None else json.dumps(run.result) for run in finished],
        [run.started_at for run in finished], [run.finished_at for run in finished],
        [run.finished_at.isoformat() for run in finished],  # ended, as AppendAttempt writes it
    )
    return [Status.DONE, "done", "", *columns, worker]


# The one good plan finds each order of the batch by its key. Read whole, the table (or an
# index) joined to the batch costs its size times the batch's, and a planner that believes
# few orders run, from statistics taken before the rush or none at all, chose just that;
# so it is left no other way in (and the fence is written so that no index serves it).
COMPLETE_BATCH_PLAN = local_settings(enable_seqscan="off", enable_bitmapscan="off", enable_hashjoin="off",
                                     enable_mergejoin="off", plan_cache_mode="force_generic_plan", jit="off")


@functools.cache
def complete_batch_sql() -> str:
    """One UPDATE for a batch of results, each order found by its key and fenced by its
    own token. Its rows arrive as arrays, so the statement's text is the same for every
    batch and PostgreSQL parses and plans it once per connection. Its parameters:
    ``complete_batch_params``."""
    table = Order._meta.db_table
    # o.started_at is still the claim time here: every SET reads the row as it was.
    history = append_sql_postgresql("o.history", "o.worker", "o.attempt", "o.started_at", "v.started", ended="v.ended")
    return (
        f"UPDATE {table} AS o SET status = %s, result = v.result, started_at = v.started,"
        f" finished_at = v.finished, lease_expires_at = NULL, history = {history}"
        " FROM unnest(%s::uuid[], %s::integer[], %s::jsonb[], %s::timestamptz[], %s::timestamptz[], %s::text[])"
        " AS v(id, attempt, result, started, finished, ended)"
        # The fence, per order: still running, still ours, still this attempt.
        f" WHERE o.id = v.id AND {held_sql('o', '%s', 'v.attempt')} RETURNING o.id"
    )


def expire_unstarted(order: Order, worker: str, attempt: int) -> Outcome:
    """An order claimed ahead whose time-to-live ran out before a thread was free for
    it: it never runs, as if it had expired in the queue."""
    now = timezone.now()
    reason = "expired before it started (claimed ahead; no thread was free in time)"
    return _fenced_update(
        order, (worker, attempt), f"order {order.pk} expired before it started",
        status=Status.EXPIRED, finished_at=now, lease_expires_at=None, last_error=reason,
        history=AppendAttempt(now, "expired", reason),
    )


def backoff_delay(counted_attempts: int) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    settings = conf.get()
    step = min(settings.retry_max_delay, settings.retry_base_delay * 2 ** (counted_attempts - 1))
    return step / 2 + random.uniform(0, step / 2)


def fail(order: Order, worker: str, attempt: int, error: str, *, started_at=None) -> Outcome:
    """Record a failed run: retry later with backoff, or dead-letter on the last attempt.
    ``started_at``: when its handler began (default: when it was claimed)."""
    now = timezone.now()
    summary = error.strip().splitlines()[-1] if error.strip() else "failed"
    counted = attempt - order.uncounted_attempts
    common = {"last_error": error, "lease_expires_at": None,
              "history": AppendAttempt(now, "failed", summary, started=started_at)}
    if started_at is not None:
        common["started_at"] = started_at
    if counted >= order.max_attempts:
        return _fenced_update(
            order, (worker, attempt), f"order {order.pk} dead after {counted} attempts: {summary}",
            status=Status.DEAD, finished_at=now, **common,
        )
    delay = backoff_delay(counted)
    return _fenced_update(
        order, (worker, attempt), f"order {order.pk} will retry in {delay:.1f} s: {summary}",
        status=Status.QUEUED, worker="", run_after=now + timedelta(seconds=delay), **common,
    )


def extend(order: Order, worker: str, attempt: int, seconds: float) -> Outcome:
    """Push this run's lease ``seconds`` into the future (a long bake, not a stuck oven)."""
    lease = timezone.now() + timedelta(seconds=seconds)
    return _fenced_update(
        order, (worker, attempt), f"order {order.pk} lease extended", lease_expires_at=lease
    )


def renew_leases(worker: str, tokens, seconds: float) -> int:
    """Push the leases of ``worker``'s runs ``seconds`` ahead in one UPDATE; a run that
    lost its order renews nothing."""
    tokens = list(tokens)
    if not tokens:
        return 0
    lease = timezone.now() + timedelta(seconds=seconds)
    return Order.objects.filter(held_tokens(worker, tokens)).update(lease_expires_at=lease)


def release(worker: str, tokens, reason: str) -> int:
    """Give back orders ``worker``'s runs still hold, without using a try: claimed ahead and
    never started, or run by a worker that failed (not the handler), saying ``reason``."""
    tokens = list(tokens)
    if not tokens:
        return 0
    now = timezone.now()
    with transaction.atomic():
        released = Order.objects.filter(held_tokens(worker, tokens)).update(
            **_requeue_fields(now, "released", reason)
        )
        if released:
            notify_after_commit()
    return released


def release_unheld(worker: str, held, reason: str) -> int:
    """Give back the orders running on ``worker`` whose tokens are not among ``held``: a
    claim committed whose answer the worker never got, so none of its runs has them."""
    running = Order.objects.filter(status=Status.RUNNING, worker=worker).values_list("pk", "attempt")
    return release(worker, [token for token in running if token not in held], reason)


def _requeue_fields(now, outcome: str, reason: str) -> dict:
    return {
        "status": Status.QUEUED, "worker": "", "lease_expires_at": None, "run_after": now,
        "uncounted_attempts": F("uncounted_attempts") + 1,
        "history": AppendAttempt(now, outcome, reason),
    }


# --- what people do --------------------------------------------------------------------


def _refusal(order_id, action: str, allowed: str) -> Outcome:
    status = Order.objects.filter(pk=order_id).values_list("status", flat=True).first()
    if status is None:
        return Outcome(False, f"no order {order_id}")
    return Outcome(False, f"order {order_id} is {status}; only {allowed} orders can be {action}")


def cancel(order_id) -> Outcome:
    """Withdraw an order that has not started, give up on a dead letter for good, or stop
    a running one: it ends cancelled at once (so whatever its run returns is refused by
    the fence) and its worker is told, so the handler can see ``cancel_requested()``."""
    now = timezone.now()
    cancellable = Order.objects.filter(pk=order_id, status__in=[Status.WAITING, Status.QUEUED, Status.DEAD])
    # An order that failed before (a dead letter, a retry waiting) keeps its error; one
    # that never ran says so.
    changed = cancellable.exclude(last_error="").update(status=Status.CANCELLED, finished_at=now)
    changed = changed or cancellable.update(
        status=Status.CANCELLED, finished_at=now, last_error="cancelled before it started"
    )
    if changed:
        return Outcome(True, f"order {order_id} cancelled")
    with transaction.atomic():
        reason = "cancelled while running"
        stopped = Order.objects.filter(pk=order_id, status=Status.RUNNING).update(
            status=Status.CANCELLED, finished_at=now, lease_expires_at=None, last_error=reason,
            history=AppendAttempt(now, "cancelled", reason),
        )
        if stopped:
            notify_after_commit(CANCEL_CHANNEL, payload=str(order_id))
            return Outcome(True, f"order {order_id} cancelled while running; its worker was told")
    return _refusal(order_id, "cancelled", "waiting, queued, running or dead")


def cancelled_among(order_ids) -> set:
    """Which of these orders were cancelled (a worker asks about the ones it runs)."""
    return set(Order.objects.filter(pk__in=list(order_ids), status=Status.CANCELLED).values_list("pk", flat=True))


def retry(order_id) -> Outcome:
    """Put a dead-lettered order back in the queue with a fresh set of tries."""
    with transaction.atomic():
        # A person asked for it to run again: its old time-to-live no longer applies.
        changed = Order.objects.filter(pk=order_id, status=Status.DEAD).update(
            status=Status.QUEUED, run_after=timezone.now(), finished_at=None, worker="", expires_at=None,
            uncounted_attempts=F("attempt"),
        )
        if changed:
            notify_after_commit()
    return Outcome(True, f"order {order_id} queued again") if changed else _refusal(order_id, "retried", "dead")


def requeue(order_id) -> Outcome:
    """Send an order back to the queue now: a run a person judges stuck (its token is
    fenced off, and the try is not counted), or an order that expired or was cancelled."""
    now = timezone.now()
    with transaction.atomic():
        changed = Order.objects.filter(pk=order_id, status=Status.RUNNING).update(
            **_requeue_fields(now, "requeued", "requeued by a person")
        ) or Order.objects.filter(pk=order_id, status__in=[Status.EXPIRED, Status.CANCELLED]).update(
            status=Status.QUEUED, run_after=now, finished_at=None, expires_at=None,
            uncounted_attempts=F("attempt"),
        )
        if changed:
            notify_after_commit()
    if changed:
        return Outcome(True, f"order {order_id} requeued")
    return _refusal(order_id, "requeued", "running, expired or cancelled")


# --- housekeeping ----------------------------------------------------------------------


def expire_overdue(now=None) -> int:
    """Orders not started before their time-to-live ran out never run: mark them expired
    (also those still waiting for others)."""
    now = now or timezone.now()
    # One status at a time: each is a filter its own index serves.
    return sum(
        Order.objects.filter(status=status, expires_at__lte=now).update(
            status=Status.EXPIRED, finished_at=now, last_error="expired before it started")
        for status in (Status.QUEUED, Status.WAITING)
    )


def requeue_lapsed(now=None) -> int:
    """Runs whose lease lapsed (a stuck oven) lose their order: retry it elsewhere, or
    dead-letter it if that was its last try. The stuck run's token is now stale."""
    now = now or timezone.now()
    lapsed = Order.objects.filter(status=Status.RUNNING, lease_expires_at__lte=now)
    exhausted = Q(attempt__gte=F("uncounted_attempts") + F("max_attempts"))
    reason = "visibility timeout lapsed"
    with transaction.atomic():
        dead = lapsed.filter(exhausted).update(
            status=Status.DEAD, finished_at=now, lease_expires_at=None, last_error=reason,
            history=AppendAttempt(now, "lapsed", reason),
        )
        requeued = lapsed.exclude(exhausted).update(
            status=Status.QUEUED, worker="", lease_expires_at=None, run_after=now, last_error=reason,
            history=AppendAttempt(now, "lapsed", reason),
        )
        if requeued:
            notify_after_commit()
    return requeued + dead


def requeue_running_on(worker: str, reason: str) -> int:
    """Every order running on ``worker`` goes back to the queue, without using a try
    (the worker stopped or was lost; the handler did not fail)."""
    now = timezone.now()
    with transaction.atomic():
        requeued = Order.objects.filter(status=Status.RUNNING, worker=worker).update(
            **_requeue_fields(now, "requeued", reason)
        )
        if requeued:
            notify_after_commit()
    return requeued


def close_pinned(worker: str) -> int:
    """Take-away orders cannot move: when their shop is gone they fail, saying why."""
    now = timezone.now()
    reason = f"shop {worker} closed; order not moved"
    pinned = Order.objects.in_play().filter(pinned_to=worker)
    return pinned.update(
        status=Status.DEAD, finished_at=now, lease_expires_at=None, last_error=reason,
        history=AppendAttempt(now, "closed", reason),
    )


def close_orphaned_pins(open_shops) -> int:
    """Take-away orders pinned to a shop that is not open (dead, gone, or never was) fail
    saying so, instead of waiting forever."""
    orphaned = (Order.objects.in_play().exclude(pinned_to="")
                .exclude(pinned_to__in=list(open_shops)).values_list("pinned_to", flat=True).distinct())
    return sum(close_pinned(shop) for shop in list(orphaned))


def prune_finished(older_than: float | None = None, batch: int = PRUNE_BATCH, on_batch=None,
                   max_batches: int | None = None) -> int:
    """Delete finished orders older than the retention period, a batch at a time so no
    transaction grows large (at most ``max_batches``); ``on_batch(n)`` hears how many each
    batch deleted."""
    retention = conf.get().retention if older_than is None else older_than
    cutoff = timezone.now() - timedelta(seconds=retention)
    old = Order.objects.finished().filter(finished_at__lt=cutoff)
    pruned = 0
    while ids := list(old.values_list("id", flat=True)[:batch]):
        with transaction.atomic():
            # Lock the batch, so a retry cannot revive an order between tallying and deleting it.
            locked = old.select_for_update().filter(id__in=ids).values_list("id", flat=True)
            doomed = Order.objects.filter(id__in=list(locked))
            # The tally commits with the deletion: totals read from the table never go down.
            record_pruned(doomed)
            deleted = doomed.delete()[0]
        pruned += deleted
        if on_batch:
            on_batch(deleted)
        if max_batches is not None and (max_batches := max_batches - 1) <= 0:
            break
    return pruned
