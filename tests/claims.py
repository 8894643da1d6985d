"""Claiming in a test, once, as a worker's Claim does it again and again."""

from orders.claiming import Claim


def claim(worker: str, limit: int = 1, *, buckets=None, alive=None):
    """Atomically take up to ``limit`` ready orders for ``worker``, highest priority first."""
    return Claim(worker, buckets=buckets, alive=alive)(limit)
