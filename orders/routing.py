"""Which bucket an order belongs to: a stable hash of its routing key."""

import hashlib


def stable_hash(label: str) -> int:
    """A 64-bit hash of ``label`` that every process, host and release agrees on (blake2b:
    Python's own ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "big")


def bucket_for(routing_key: str, buckets: int) -> int:
    """The bucket of ``routing_key``."""
    return stable_hash(routing_key) % buckets
