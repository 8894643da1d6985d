"""Ordered processing per key: orders of an ordered kind or queue that share a routing
key run one at a time, in the order they were placed, through retries and failures."""


import pytest

from orders.models import Order, Sequence, Status
from orders.services import OrderSpec, complete, fail, place_order, place_orders, prune_finished
from tests.claims import claim
from tests.threads import at_once


def statuses(orders) -> list[str]:
    return [Order.objects.get(pk=order.pk).status for order in orders]


def run(order, *, error=None):
    [running] = [o for o in claim("S0", 100) if o.pk == order.pk]
    if error:
        return fail(running, "S0", running.attempt, error)
    return complete(running, "S0", running.attempt)


@pytest.mark.django_db
def test_orders_with_one_key_run_one_at_a_time_in_placement_order():
    steps = [place_order("step", {"n": n}, routing_key="customer-1") for n in range(3)]
    other = place_order("step", routing_key="customer-2")

    assert statuses(steps) == [Status.QUEUED, Status.WAITING, Status.WAITING]
    assert {o.pk for o in claim("S0", 10)} == {steps[0].pk, other.pk}, "other keys are not held up"
    Order.objects.filter(status=Status.RUNNING).update(status=Status.QUEUED)  # give them back
    for position, order in enumerate(steps):
        run(order)
        assert statuses(steps[position + 1:position + 2]) in ([Status.QUEUED], [])


@pytest.mark.django_db
def test_a_later_order_waits_while_an_earlier_one_waits_for_its_retry_and_goes_on_after_it_dies():
    first = place_order("step", routing_key="k", max_attempts=2)
    second = place_order("step", routing_key="k")

    run(first, error="flickered")
    assert statuses([first, second]) == [Status.QUEUED, Status.WAITING]
    Order.objects.filter(pk=first.pk).update(run_after=first.created_at)  # the backoff is over
    run(first, error="flickered again")

    assert statuses([first, second]) == [Status.DEAD, Status.QUEUED], "a sequence goes on after a failure"


@pytest.mark.django_db
def test_one_call_with_several_orders_of_a_key_chains_them_and_the_next_call_follows_on():
    placed = place_orders([OrderSpec("step", routing_key="k") for _ in range(3)])
    later = place_order("step", routing_key="k")

    assert statuses(placed + [later]) == [Status.QUEUED] + [Status.WAITING] * 3
    assert Sequence.objects.get().last_order_id == later.pk
    for order in placed:
        run(order)
    assert statuses([later]) == [Status.QUEUED]


@pytest.mark.django_db
def test_a_kind_that_is_not_ordered_or_an_order_without_a_routing_key_is_not_held_up():
    assert statuses([place_order("bake", routing_key="k") for _ in range(2)]) == [Status.QUEUED] * 2
    assert statuses([place_order("step") for _ in range(2)]) == [Status.QUEUED] * 2
    assert Sequence.objects.count() == 0


@pytest.mark.django_db
def test_a_queue_can_be_ordered_in_the_settings(pizzaq_settings):
    pizzaq_settings(ordered_queues=("invoices",))
    first, second = (place_order("bake", queue="invoices", routing_key="customer-9") for _ in range(2))
    assert statuses([first, second]) == [Status.QUEUED, Status.WAITING]


@pytest.mark.django_db
def test_after_the_last_order_of_a_key_is_pruned_the_next_one_is_queued_at_once():
    first = place_order("step", routing_key="k")
    run(first)
    prune_finished(older_than=-1)
    assert statuses([place_order("step", routing_key="k")]) == [Status.QUEUED]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_placers_of_one_key_at_once_make_one_chain():
    placed = at_once(*[lambda: place_order("step", routing_key="k")] * 8)

    order = claim("S0", 10)
    done = []
    while order:
        assert len(order) == 1, "never two of one key at once"
        complete(order[0], "S0", order[0].attempt)
        done.append(order[0].pk)
        order = claim("S0", 10)
    assert sorted(done) == sorted(o.pk for o in placed)
