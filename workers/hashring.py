"""A consistent-hash ring with virtual nodes: buckets -> worker names.

Pure Python, no Django. Positions come from the same stable hash as buckets, so every
process on every host computes the same ring. Removing a node moves exactly that node's buckets; adding one
moves buckets only to the newcomer.
"""

import bisect

from orders.routing import stable_hash as _position

DEFAULT_VNODES = 160


class HashRing:
    def __init__(self, nodes=(), vnodes: int = DEFAULT_VNODES):
        self.nodes = frozenset(nodes)
        points = sorted((_position(f"{node}#{i}"), node) for node in self.nodes for i in range(vnodes))
        self._positions = [position for position, _ in points]
        self._owners = [node for _, node in points]

    def owner(self, bucket: int) -> str | None:
        """The node owning ``bucket``: the first virtual node clockwise from its position."""
        if not self._positions:
            return None
        index = bisect.bisect(self._positions, _position(f"bucket-{bucket}")) % len(self._positions)
        return self._owners[index]

    def assignments(self, buckets: int) -> dict[int, str | None]:
        """Owner of every bucket 0..buckets-1."""
        return {bucket: self.owner(bucket) for bucket in range(buckets)}
