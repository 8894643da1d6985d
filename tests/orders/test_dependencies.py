"""Orders that wait for others: placed waiting, released by the transaction that finishes
the last order they wait for, cancelled (saying why) when one of them fails, unless
placed with after_policy="always"."""


import pytest

from orders.models import Dependency, Order, Status
from orders.services import (OrderSpec, cancel, complete, complete_many, fail, place_chain, place_group,
                             place_order, RunResult)
from orders.specs import OrderRejected
from tests.claims import claim
from tests.threads import at_once
from tests.orders.test_api import api, post_json, user  # noqa: F401 - fixtures


def run_to_done(order, worker="S0"):
    [running] = [o for o in claim(worker, 50) if o.pk == order.pk] or [None]
    assert running is not None, f"{order.pk} was not claimable"
    assert complete(running, worker, running.attempt, "ok")


def fail_for_good(order, worker="S0"):
    [running] = [o for o in claim(worker, 50) if o.pk == order.pk]
    assert fail(running, worker, running.attempt, "boom")


def status(order) -> str:
    return Order.objects.get(pk=order.pk).status


@pytest.mark.django_db
def test_an_order_placed_after_two_others_waits_until_both_are_done():
    a, b = place_order("bake"), place_order("bake")
    c = place_order("bake", after=[a, b.pk])

    assert status(c) == Status.WAITING
    assert [o.pk for o in claim("S0", 10)] == [a.pk, b.pk]  # the waiting one is not claimable
    a.refresh_from_db(), b.refresh_from_db()
    assert complete(a, "S0", a.attempt)
    assert status(c) == Status.WAITING
    assert complete(b, "S0", b.attempt)
    assert status(c) == Status.QUEUED
    assert [o.pk for o in claim("S0", 10)] == [c.pk]


@pytest.mark.django_db
def test_the_batch_completion_releases_waiting_orders_in_its_own_transaction():
    group = place_group([OrderSpec("bake") for _ in range(3)], then=OrderSpec("bake", {"publish": True}))
    running = claim("S0", 10)
    assert {o.pk for o in running} == {o.pk for o in group.children}

    won = complete_many("S0", [RunResult(o, None, o.started_at, o.started_at) for o in running])

    assert all(won.values())
    assert status(group.callback) == Status.QUEUED
    assert Order.objects.get(pk=group.callback.pk).waiting_for == 0


@pytest.mark.django_db
def test_a_dependency_that_ends_dead_cancels_its_dependent_naming_it():
    a = place_order("bake", max_attempts=1)
    waiting = place_order("bake", after=[a])
    fail_for_good(a)

    waiting.refresh_from_db()
    assert waiting.status == Status.CANCELLED
    assert waiting.last_error == f"order {a.pk} it waited for ended dead"
    assert waiting.finished_at is not None


@pytest.mark.django_db
def test_with_after_policy_always_the_dependent_runs_after_a_dead_dependency():
    a = place_order("bake", max_attempts=1)
    waiting = place_order("bake", after=[a], after_policy="always")
    fail_for_good(a)

    assert status(waiting) == Status.QUEUED
    run_to_done(waiting)


@pytest.mark.django_db
def test_a_chain_runs_link_by_link_and_a_cancelled_link_cancels_the_rest():
    a, b, c = place_chain([OrderSpec("bake"), OrderSpec("bake"), OrderSpec("bake")])
    assert [status(o) for o in (a, b, c)] == [Status.QUEUED, Status.WAITING, Status.WAITING]
    run_to_done(a)
    assert [status(o) for o in (b, c)] == [Status.QUEUED, Status.WAITING]

    assert cancel(b.pk)

    c.refresh_from_db()
    assert c.status == Status.CANCELLED and c.last_error == f"order {b.pk} it waited for ended cancelled"


@pytest.mark.django_db
def test_placed_after_finished_orders_it_is_queued_or_cancelled_at_once():
    done = place_order("bake")
    run_to_done(done)
    dead = place_order("bake", max_attempts=1)
    fail_for_good(dead)

    assert status(place_order("bake", after=[done])) == Status.QUEUED
    refused = place_order("bake", after=[done, dead])
    assert refused.status == Status.CANCELLED and status(refused) == Status.CANCELLED
    assert refused.last_error == f"order {dead.pk} it waited for ended dead"


@pytest.mark.django_db
def test_waiting_for_an_unknown_order_or_bad_input_is_refused_and_places_nothing():
    with pytest.raises(OrderRejected, match="no order"):
        place_order("bake", after=["0190f000-0000-7000-8000-000000000000"])
    with pytest.raises(OrderRejected, match="not an order id"):
        place_order("bake", after=["nope"])
    with pytest.raises(OrderRejected, match="list"):
        place_order("bake", after="0190f000-0000-7000-8000-000000000000")
    with pytest.raises(OrderRejected, match="after_policy"):
        place_order("bake", after=[place_order("bake")], after_policy="sometimes")
    assert Order.objects.count() == 1 and Dependency.objects.count() == 0


@pytest.mark.django_db
def test_a_group_is_placed_whole_or_not_at_all():
    with pytest.raises(OrderRejected):
        place_group([OrderSpec("bake"), OrderSpec("no-such-kind")], then=OrderSpec("bake"))
    assert Order.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_last_dependencies_finishing_at_once_in_two_transactions_release_the_order_once():
    for _ in range(20):
        group = place_group([OrderSpec("bake"), OrderSpec("bake")], then=OrderSpec("bake"))
        [first], [second] = claim("S0", 1), claim("S1", 1)
        at_once(lambda: complete(first, "S0", first.attempt), lambda: complete(second, "S1", second.attempt))
        callback = Order.objects.get(pk=group.callback.pk)
        assert (callback.status, callback.waiting_for) == (Status.QUEUED, 0)
        run_to_done(callback)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_order_finishing_while_another_is_placed_after_it_still_releases_it():
    for _ in range(20):
        awaited = place_order("bake")
        [running] = claim("S0", 1)
        placed, _ = at_once(lambda: place_order("bake", after=[awaited]),
                            lambda: complete(running, "S0", running.attempt))
        assert status(placed) == Status.QUEUED
        run_to_done(placed)


@pytest.mark.django_db
def test_the_api_places_an_order_after_others_and_shows_both_sides_of_the_link(api):
    first = place_order("bake")
    response = post_json(api, {"kind": "bake", "after": [str(first.pk)]})
    assert response.status_code == 202 and response.json()["status"] == "waiting"
    waiting_id = response.json()["id"]

    waiting = api.get(f"/api/orders/{waiting_id}").json()
    awaited = api.get(f"/api/orders/{first.pk}").json()

    assert waiting["waiting_for"] == 1
    assert [(o["id"], o["status"]) for o in waiting["after"]] == [(str(first.pk), "queued")]
    assert [(o["id"], o["status"]) for o in awaited["followed_by"]] == [(waiting_id, "waiting")]
    run_to_done(first)
    assert api.get(f"/api/orders/{waiting_id}").json()["status"] == "queued"


@pytest.mark.django_db
def test_the_api_refuses_waiting_for_an_order_that_does_not_exist_and_places_nothing(api):
    response = post_json(api, {"kind": "bake", "after": ["0190f000-0000-7000-8000-000000000000"]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "after" and "no order" in response.json()["error"]["message"]
    response = post_json(api, {"kind": "bake", "after": [1, 2]})
    assert response.status_code == 400 and response.json()["error"]["field"] == "after"
    assert Order.objects.count() == 0
