"""Unique orders: one order per key in its scope, whoever places it and however they race."""

import json
import time

import pytest
from django.db import transaction

from orders.models import Order, Status, UniqueKey
from orders.services import OrderSpec, complete, place_order, place_orders
from orders.specs import OrderRejected
from tests.claims import claim
from tests.threads import at_once
from tests.orders.test_api import api, user  # noqa: F401 - fixtures


def finish(order):
    [running] = claim("S0", 1)
    assert running.pk == order.pk
    assert complete(running, "S0", running.attempt, "sent")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_placers_racing_with_one_key_make_one_order_and_all_get_it_back():
    results = at_once(*[lambda: place_order("bake", {"n": 1}, unique_key="invoice-7")] * 8)

    assert Order.objects.count() == 1
    assert {order.pk for order in results} == {Order.objects.get().pk}
    assert sorted(order.duplicate for order in results) == [False] + [True] * 7


@pytest.mark.django_db
def test_once_the_holder_has_finished_the_key_is_free_again():
    first = place_order("bake", unique_key="k")
    assert place_order("bake", unique_key="k").pk == first.pk
    finish(first)

    second = place_order("bake", unique_key="k")

    assert second.pk != first.pk and not second.duplicate
    assert UniqueKey.objects.get(key="k").order_id == second.pk


@pytest.mark.django_db
def test_scope_queued_lets_a_new_order_in_while_the_holder_runs_and_active_does_not():
    queued_only = place_order("bake", unique_key="q", unique_scope="queued")
    active = place_order("bake", unique_key="a")
    claim("S0", 10)

    assert not place_order("bake", unique_key="q", unique_scope="queued").duplicate
    again = place_order("bake", unique_key="a")
    assert again.duplicate and again.pk == active.pk and again.status == Status.RUNNING
    assert queued_only.unique_key == "q"


@pytest.mark.django_db
def test_scope_period_holds_the_key_after_the_order_is_done_until_the_period_ends():
    first = place_order("bake", unique_key="daily", unique_scope="period", unique_period=0.5)
    finish(first)

    assert place_order("bake", unique_key="daily", unique_scope="period", unique_period=0.5).pk == first.pk
    time.sleep(0.6)
    assert not place_order("bake", unique_key="daily", unique_scope="period", unique_period=0.5).duplicate


@pytest.mark.django_db
def test_a_placement_rolled_back_leaves_the_key_free():
    with pytest.raises(RuntimeError), transaction.atomic():
        place_order("bake", unique_key="k")
        raise RuntimeError("the caller's transaction failed")

    assert not place_order("bake", unique_key="k").duplicate
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_duplicates_within_one_batch_get_the_first_one_back():
    placed = place_orders([OrderSpec("bake", unique_key="k"), OrderSpec("bake"), OrderSpec("bake", unique_key="k")])

    assert Order.objects.count() == 2
    assert placed[0].pk == placed[2].pk and [o.duplicate for o in placed] == [False, False, True]


@pytest.mark.parametrize("options, field", [
    ({"unique_key": ""}, "unique_key"),
    ({"unique_key": "k", "unique_scope": "forever"}, "unique_scope"),
    ({"unique_key": "k", "unique_scope": "period"}, "unique_period"),
    ({"unique_key": "k", "unique_period": 5}, "unique_period"),
    ({"unique_period": 5}, "unique_period"),
    ({"unique_key": "x" * 201}, "unique_key"),
])
@pytest.mark.django_db
def test_a_bad_unique_option_is_refused_and_writes_nothing(options, field):
    with pytest.raises(OrderRejected) as rejected:
        place_order("bake", **options)

    assert rejected.value.field == field
    assert not Order.objects.exists() and not UniqueKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_a_duplicate_with_200_and_the_existing_order(api):  # noqa: F811
    body = json.dumps({"kind": "bake", "unique_key": "receipt-9"})

    first = api.post("/api/orders", data=body, content_type="application/json")
    again = api.post("/api/orders", data=body, content_type="application/json")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert first.json()["duplicate"] is False and Order.objects.count() == 1
    assert api.get(first.json()["url"]).json()["unique_key"] == "receipt-9"
