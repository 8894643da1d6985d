"""Ordered processing per key: orders of an ordered kind (``@handler(..., ordered=True)``)
or queue (PIZZAQ_ORDERED_QUEUES) that share a routing key run one at a time, in the order
they were placed, across the whole cluster, through failover and retries.

Each is placed waiting for the order placed before it with the same key (the tail its
Sequence row names), with the policy "always": it becomes queued when that order is
finished, however it ended, and not while it runs, waits for a retry, or is being moved
from a dead shop. The Sequence row is locked while an order is placed, so two placers of
one key are put in the order they commit, each after the other.
"""

from uuid import UUID

from orders import conf
from orders.handlers import is_ordered
from orders.models import Order, Sequence
from orders.specs import OrderSpec

# A Sequence row made for a key before any order had it: no order to wait for.
NO_ORDER = UUID(int=0)


def sequence_key(spec: OrderSpec, queues: tuple) -> str | None:
    """The key whose orders run in turn, or None for an order that waits for no other."""
    if spec.routing_key is None:
        return None  # its own key: nothing to be ordered with
    if is_ordered(spec.kind):
        return f"kind {spec.kind}:{spec.routing_key}"
    if spec.queue in queues:
        return f"queue {spec.queue}:{spec.routing_key}"
    return None


def keys_of(specs: list[OrderSpec]) -> dict[int, str]:
    """The sequence key of each spec that has one, by index."""
    queues = conf.get().ordered_queues
    keys = {index: sequence_key(spec, queues) for index, spec in enumerate(specs)}
    return {index: key for index, key in keys.items() if key is not None}


def predecessors(keys: dict[int, str], ids: list[UUID]) -> dict[int, UUID | int]:
    """Inside the placing transaction: for each sequenced order of this call, the order it
    waits for (an id placed before, or the index of an earlier order of this call), and
    each key's tail moved on to the last of them. Orders whose predecessor has finished
    are sorted out by the dependency rules, which see its status."""
    wanted = sorted(set(keys.values()))
    # Make the rows that do not exist yet, then lock them all, always in key order, so two
    # placers of overlapping keys queue up instead of deadlocking.
    Sequence.objects.bulk_create([Sequence(key=key, last_order_id=NO_ORDER) for key in wanted], ignore_conflicts=True)
    tails = dict(Sequence.objects.select_for_update().filter(key__in=wanted).order_by("key")
                 .values_list("key", "last_order_id"))
    # A tail that was pruned had finished long ago: nothing to wait for.
    kept = set(Order.objects.filter(pk__in=set(tails.values()) - {NO_ORDER}).values_list("pk", flat=True))
    before, last_in_call = {}, {}
    for index, key in sorted(keys.items()):
        if key in last_in_call:
            before[index] = last_in_call[key]
        elif tails[key] in kept:
            before[index] = tails[key]
        last_in_call[key] = index
    for key, index in last_in_call.items():
        Sequence.objects.filter(key=key).update(last_order_id=ids[index])
    return before
