"""Orders that wait for others: ``place_order(..., after=[a, b])``, groups (fan-out and
fan-in), chains, and the sequences of ordered kinds and queues.

An order placed after others that are not all finished is written ``waiting``, counting
them in ``waiting_for``, with a Dependency row for each; the orders it waits for are
marked ``has_dependents``. Releasing it is not done here: a database trigger (migration
0010, the one home of that rule) counts it down in the very transaction that finishes an
order it waits for, whichever path finishes it, and queues or cancels it. Nothing polls.

Placing and finishing meet on the awaited order's row: placing locks it before reading
its status, so an order finishing meanwhile is either seen finished here or, committing
after this placement, finds the new Dependency rows and releases the waiting order.
"""

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import connection

from orders import copying
from orders.models import FINISHED, AfterPolicy, Dependency, Order, Status
from orders.specs import OrderRejected, OrderSpec, after_policy, row_with

# Most orders one order may wait for.
MAX_AFTER = 10_000


@dataclass
class Waits:
    """What a placement's orders wait for: per order of the call (by index), the orders
    it waits for, as indexes into the call or ids of orders placed before, with a policy."""

    on: dict[int, list[tuple[int | UUID, str]]]

    def awaited_in_call(self) -> set[int]:
        return {dep for deps in self.on.values() for dep, _ in deps if isinstance(dep, int)}


def waits_of(specs: list[OrderSpec], sequenced: dict[int, UUID | int]) -> Waits:
    """Each spec's ``after`` (Orders, ids, or specs of this same call), checked, with the
    predecessor a sequence gives it (``sequenced``: index -> id or index)."""
    index_of = {id(spec): index for index, spec in enumerate(specs)}
    on = {}
    for index, spec in enumerate(specs):
        policy = after_policy(spec)
        deps = [(dep, policy) for dep in _resolved(spec.after, index, index_of)]
        if index in sequenced:
            # A sequence goes on after a failure: the next order is not the failed one's.
            deps.append((sequenced[index], AfterPolicy.ALWAYS))
        if deps:
            on[index] = deps
    return Waits(on)


def _resolved(after, index: int, index_of: dict) -> list:
    if isinstance(after, (str, bytes, Order, OrderSpec, UUID)) or not hasattr(after, "__iter__"):
        raise OrderRejected("after must be a list of orders or order ids", field="after")
    after = list(after)
    if len(after) > MAX_AFTER:
        raise OrderRejected(f"an order may wait for at most {MAX_AFTER} orders", field="after")
    resolved, seen = [], set()
    for item in after:
        dep = _one(item, index, index_of)
        if dep not in seen:
            seen.add(dep)
            resolved.append(dep)
    return resolved


def _one(item, index: int, index_of: dict) -> int | UUID:
    if isinstance(item, OrderSpec):
        if id(item) not in index_of:
            raise OrderRejected("after names an order spec that is not placed in the same call", field="after")
        if index_of[id(item)] == index:
            raise OrderRejected("an order cannot wait for itself", field="after")
        return index_of[id(item)]
    if isinstance(item, Order):
        return item.pk
    try:
        return item if isinstance(item, UUID) else UUID(str(item))
    except ValueError:
        raise OrderRejected(f"after: {str(item)[:80]!r} is not an order id", field="after") from None


def apply(rows: list[tuple], ids: list[UUID], waits: Waits, now: datetime) -> list[tuple]:
    """Inside the placing transaction: lock the awaited orders placed before, mark every
    awaited order, and give each waiting order its status. The rows (whose ids are
    ``ids``) change in place; the edges to write once the orders are written, as
    (waiting, on, policy), are returned."""
    earlier = {dep for deps in waits.on.values() for dep, _ in deps if not isinstance(dep, int)}
    status_of = _lock_earlier(earlier)
    for index in waits.awaited_in_call():
        rows[index] = row_with(rows[index], has_dependents=True)
    edges = []
    for index, deps in waits.on.items():
        unfinished, failed = 0, None
        for dep, policy in deps:
            status = Status.QUEUED if isinstance(dep, int) else status_of[dep]
            if status not in FINISHED:
                unfinished += 1
            elif status != Status.DONE and policy == AfterPolicy.CANCEL and failed is None:
                failed = (dep, status)
            edges.append((ids[index], ids[dep] if isinstance(dep, int) else dep, policy))
        rows[index] = row_with(rows[index], **_placed_state(unfinished, failed, now))
    return edges


def _placed_state(unfinished: int, failed, now) -> dict:
    if failed is not None:
        dep, status = failed
        return {"status": Status.CANCELLED, "finished_at": now, "last_error": f"order {dep} it waited for ended {status}"}
    if unfinished:
        return {"status": Status.WAITING, "waiting_for": unfinished}
    return {}


def _lock_earlier(ids: set) -> dict:
    """Lock the awaited orders that were placed before, mark them, and read their status."""
    if not ids:
        return {}
    found = dict(Order.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", "status"))
    if missing := ids - found.keys():
        raise OrderRejected(f"after: no order {sorted(missing, key=str)[0]}", field="after", code="unknown_order")
    Order.objects.filter(pk__in=[pk for pk, status in found.items() if status not in FINISHED]).update(
        has_dependents=True)
    return found


def record(edges: list[tuple], placed_ids: set) -> None:
    """Write the Dependency rows of the orders that were placed (not given back as
    duplicates): by binary COPY on PostgreSQL, where a group's thousand edges cost as much
    as its thousand orders when built as models."""
    placed = [edge for edge in edges if edge[0] in placed_ids]
    if connection.vendor == "postgresql":
        copying.copy_in(Dependency, ("waiting", "on", "policy"), placed)
    else:
        Dependency.objects.bulk_create([Dependency(waiting_id=waiting, on_id=on, policy=policy)
                                        for waiting, on, policy in placed], batch_size=2000)


# --- what the order page shows ---------------------------------------------------------


SHOWN = 200


def waits_for(order_id):
    """The orders ``order_id`` was placed after (the first SHOWN), oldest first."""
    on = Dependency.objects.filter(waiting_id=order_id).values("on_id")
    return Order.objects.filter(pk__in=on).only("id", "kind", "status").order_by("id")[:SHOWN]


def waited_for_by(order_id):
    """The orders placed after ``order_id`` (the first SHOWN), oldest first."""
    waiting = Dependency.objects.filter(on_id=order_id).values("waiting_id")
    return Order.objects.filter(pk__in=waiting).only("id", "kind", "status").order_by("id")[:SHOWN]
