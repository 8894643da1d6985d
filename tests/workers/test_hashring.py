"""Ring properties: minimal movement and balance."""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from workers.hashring import HashRing

BUCKETS = 1024
names = st.lists(st.from_regex(r"S[0-9]{1,3}", fullmatch=True), min_size=2, max_size=12, unique=True)


@settings(max_examples=40, deadline=None)
@given(nodes=names, data=st.data())
def test_removing_a_worker_moves_exactly_its_buckets(nodes, data):
    leaving = data.draw(st.sampled_from(nodes))
    before = HashRing(nodes).assignments(BUCKETS)
    after = HashRing([n for n in nodes if n != leaving]).assignments(BUCKETS)

    moved = {bucket for bucket in before if before[bucket] != after[bucket]}

    assert moved == {bucket for bucket, owner in before.items() if owner == leaving}


@settings(max_examples=40, deadline=None)
@given(nodes=names, newcomer=st.from_regex(r"N[0-9]{1,3}", fullmatch=True))
def test_adding_a_worker_moves_buckets_only_to_the_newcomer(nodes, newcomer):
    before = HashRing(nodes).assignments(BUCKETS)
    after = HashRing([*nodes, newcomer]).assignments(BUCKETS)

    moved = [bucket for bucket in before if before[bucket] != after[bucket]]

    assert moved and all(after[bucket] == newcomer for bucket in moved)


@settings(max_examples=30, deadline=None)
@given(count=st.integers(min_value=3, max_value=16), prefix=st.sampled_from(["S", "shop-", "w"]))
def test_the_busiest_worker_owns_at_most_1_3_times_the_average(count, prefix):
    nodes = [f"{prefix}{n}" for n in range(count)]

    load = Counter(HashRing(nodes).assignments(BUCKETS).values())

    assert set(load) == set(nodes)
    assert max(load.values()) <= 1.3 * BUCKETS / count


# Buckets keep their owners across releases and hosts: this must never change.
PINNED_OWNERS = ["S0", "S1", "S1", "S0", "S2", "S2", "S1", "S1", "S0", "S2", "S0", "S2"]


def test_the_ring_is_pinned_whatever_the_order_of_its_nodes():
    for nodes in (["S0", "S1", "S2"], ["S2", "S0", "S1"]):
        assert [HashRing(nodes).owner(b) for b in range(12)] == PINNED_OWNERS
    assert HashRing([]).owner(5) is None
