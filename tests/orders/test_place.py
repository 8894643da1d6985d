"""Placing orders: durable acknowledgement, validation, buckets."""

import sqlite3

import psycopg
import pytest
from django.db import connection

from orders.models import Order, Status
from orders.routing import bucket_for
from orders.services import OrderRejected, OrderSpec, place_order, place_orders
from tests.conftest import run_python


def count_from_another_connection(order_id) -> int:
    """Look for the order through a connection of our own, outside Django's."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        with sqlite3.connect(params["NAME"]) as other:
            return other.execute("SELECT count(*) FROM orders_order WHERE id = ?", [order_id.hex]).fetchone()[0]
    with psycopg.connect(dbname=params["NAME"], user=params["USER"], host=params["HOST"], port=params["PORT"]) as other:
        return other.execute("SELECT count(*) FROM orders_order WHERE id = %s", [order_id]).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_placed_order_is_visible_to_another_connection_when_place_order_returns():
    order = place_order("bake", {"pizza": "diavola"}, priority=5)

    assert count_from_another_connection(order.id) == 1


@pytest.mark.django_db(transaction=True)
def test_bulk_placed_orders_are_all_visible_to_another_connection():
    orders = place_orders([OrderSpec("noop") for _ in range(50)])

    assert sum(count_from_another_connection(order.id) for order in orders) == 50


AWKWARD_PAYLOADS = [
    {"text": "tab\there, newline\nthere, back\\slash, \"quoted\", \\N, 中文, emoji 🍕"},
    {"nested": {"list": [1, 2.5, None, True, {"deep": ["x\ty"]}]}, "empty": {}},
    {},
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [1, 10, 500], ids=["one statement", "one insert", "copy"])
def test_every_way_of_placing_stores_exactly_what_it_returned(count):
    specs = [
        OrderSpec("bake" if n % 2 else "noop", AWKWARD_PAYLOADS[n % 3], priority=n % 201 - 100,
                  routing_key=None if n % 4 else f"customer\t{n}", delay=n % 5 or None,
                  ttl=(n % 5) + 60 if n % 3 else None, max_attempts=n % 7 + 1, pinned_to="S1" if n % 9 == 0 else "")
        for n in range(count)
    ]

    returned = place_orders(specs)

    fields = [field.attname for field in Order._meta.concrete_fields]
    stored = {order.pk: order for order in Order.objects.all()}
    assert len(stored) == count
    for order in returned:
        assert [getattr(stored[order.pk], name) for name in fields] == [getattr(order, name) for name in fields]
        assert not order._state.adding  # the returned orders are saved ones
    assert [o.payload for o in returned] == [spec.payload for spec in specs]


@pytest.mark.django_db
def test_order_defaults_routing_key_to_its_id_and_bucket_to_its_hash(pizzaq_settings):
    pizzaq_settings(buckets=64)
    order = place_order("bake")

    order.refresh_from_db()
    assert order.status == Status.QUEUED
    assert order.routing_key == str(order.id)
    assert order.bucket == bucket_for(str(order.id), 64)


@pytest.mark.django_db
def test_orders_of_one_routing_key_share_a_bucket():
    buckets = {place_order("deliver", routing_key="customer-42").bucket for _ in range(5)}

    assert len(buckets) == 1


# Orders already placed keep the bucket they were given: these values must never change.
PINNED_BUCKETS = {("a", 1024): 559, ("b", 1024): 885, ("customer-42", 1024): 42, ("", 1024): 692,
                  ("customer-42", 7): 5}


def test_bucket_hash_is_pinned_and_the_same_in_another_interpreter():
    here = {key: bucket_for(*key) for key in PINNED_BUCKETS}
    # A fresh interpreter with another hash seed: Python's own hash() would differ there.
    there = run_python(f"from orders.routing import bucket_for; print([bucket_for(*key) for key in {list(PINNED_BUCKETS)!r}])",
                       PYTHONHASHSEED="12345")

    assert here == PINNED_BUCKETS
    assert there.strip() == str(list(PINNED_BUCKETS.values()))
    assert all(0 <= bucket_for(str(n), 7) < 7 for n in range(100))


@pytest.mark.django_db
def test_delay_and_ttl_set_run_after_and_expiry():
    order = place_order("bake", delay=60, ttl=120)

    assert 59 <= (order.run_after - order.created_at).total_seconds() <= 61
    assert 119 <= (order.expires_at - order.created_at).total_seconds() <= 121


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind, payload, options, field",
    [
        ("no-such-kind", {}, {}, "kind"),
        ("", {}, {}, "kind"),
        ("bake", {}, {"priority": 101}, "priority"),
        ("bake", {}, {"priority": -101}, "priority"),
        ("bake", {}, {"priority": "high"}, "priority"),
        ("bake", [1, 2], {}, "payload"),
        ("bake", {"when": object()}, {}, "payload"),
        ("bake", {}, {"delay": -1}, "delay"),
        ("bake", {}, {"ttl": "soon"}, "ttl"),
        ("bake", {}, {"delay": 10, "ttl": 5}, "ttl"),
        ("bake", {}, {"max_attempts": 0}, "max_attempts"),
        ("bake", {}, {"routing_key": "k" * 201}, "routing_key"),
    ],
)
def test_bad_orders_are_refused_and_nothing_is_written(kind, payload, options, field):
    with pytest.raises(OrderRejected) as rejected:
        place_order(kind, payload, **options)

    assert rejected.value.field == field
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_payload_over_the_limit_is_refused(pizzaq_settings):
    pizzaq_settings(max_payload_bytes=100)

    with pytest.raises(OrderRejected, match="limit is 100") as rejected:
        place_order("bake", {"notes": "x" * 200})
    assert rejected.value.code == "payload_too_large"
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_one_bad_spec_in_a_bulk_placement_writes_none_of_them():
    with pytest.raises(OrderRejected):
        place_orders([OrderSpec("noop"), OrderSpec("noop"), OrderSpec("noop", priority=500)])

    assert Order.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_bad_spec_deep_in_a_large_batch_writes_none_and_says_which():
    specs = [OrderSpec("noop", {"n": n}) for n in range(300)]
    specs[250] = OrderSpec("noop", {"n": 250}, priority=500)

    with pytest.raises(OrderRejected) as rejected:
        place_orders(specs)

    assert rejected.value.index == 250 and rejected.value.field == "priority"
    assert Order.objects.count() == 0
    assert len(place_orders(specs[:250])) == 250  # the connection is fine afterwards
    assert count_from_another_connection(Order.objects.first().id) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("options", [
    {"payload": {"note": "a\x00b"}}, {"payload": {"a\x00": 1}}, {"payload": {"list": [["x\x00"]]}},
    {"routing_key": "k\x00"}, {"delay": 1e12}, {"ttl": 1e300},
])
def test_nul_characters_and_absurd_durations_are_refused(options):
    payload = options.pop("payload", {})

    with pytest.raises(OrderRejected):
        place_order("bake", payload, **options)
    assert Order.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_are_woken_once_per_transaction_and_only_after_commit():
    from django.db import transaction

    from orders.notify import ORDERS_CHANNEL

    params = connection.settings_dict
    with psycopg.connect(dbname=params["NAME"], user=params["USER"], host=params["HOST"], port=params["PORT"],
                         autocommit=True) as listener:
        listener.execute(f"LISTEN {ORDERS_CHANNEL}")

        def heard() -> int:
            return len(list(listener.notifies(timeout=0.5)))

        with transaction.atomic():
            for _ in range(3):
                place_order("noop")
            place_orders([OrderSpec("noop") for _ in range(2500)])
            before_commit = heard()
        after_commit = heard()
        place_order("noop")
        single = heard()

    assert (before_commit, after_commit, single) == (0, 1, 1)
