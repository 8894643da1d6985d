"""Which bucket an order belongs to: a stable hash of its routing key."""

import hashlib


def bucket_for(routing_key: str, buckets: int) -> int:
    """The bucket of ``routing_key``; blake2b, so every process and release agrees."""
    digest = hashlib.blake2b(routing_key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets
