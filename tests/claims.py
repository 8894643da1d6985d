"""Claiming in a test, once, as a worker's Claim does it again and again."""

from orders.claiming import Claim


from django.db.models import Q


def claim(worker: str, limit: int = 1, *, buckets=None, mine=None, alive=None, queues=None):
    """Atomically take up to ``limit`` ready orders for ``worker``, highest priority first;
    only from ``buckets``, or the orders ``mine`` selects, if given."""
    if buckets is not None:
        mine = Q(bucket__in=buckets)
    return Claim(worker, mine=mine, alive=alive, queues=queues)(limit)
