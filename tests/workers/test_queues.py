"""Named queues in one process: who may claim an order of which queue, before and after
deaths, orders of a queue nobody serves, and pausing and resuming a queue."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from orders.models import Order, Queue, Status
from orders.services import OrderSpec, place_order, place_orders
from orders.specs import OrderRejected
from orders.tokens import create_token
from tests.claims import claim
from workers.actions import act_on
from workers.membership import Death, declare_dead, register
from workers.models import Bucket, Event, EventKind
from workers.ownership import territory

pytestmark = pytest.mark.django_db


def claim_all(worker) -> list[Order]:
    """Everything ``worker`` may take now, as its claim loop would take it."""
    return claim(worker.name, 10_000, mine=territory(worker.name), queues=worker.queues or None)


def place(queue: str, count: int, prefix: str = "") -> None:
    place_orders([OrderSpec("bake", queue=queue, routing_key=f"{prefix}{queue}-{n}") for n in range(count)])


def die(name: str) -> None:
    declare_dead(name, Death(EventKind.DIED, f"{name} missed heartbeats"))


def test_each_order_goes_only_to_a_worker_serving_its_queue(pizzaq_settings):
    pizzaq_settings(buckets=64)
    only_a, only_b, both = register("S0", queues=["a"]), register("S1", queues=["b"]), register("S2", queues=["a", "b"])
    place("a", 100)
    place("b", 100)

    taken = {worker.name: claim_all(worker) for worker in (only_a, only_b, both)}

    assert {o.queue for o in taken["S0"]} == {"a"} and {o.queue for o in taken["S1"]} == {"b"}
    assert {o.queue for o in taken["S2"]} == {"a", "b"}
    assert sum(len(orders) for orders in taken.values()) == 200
    assert not Order.objects.filter(status=Status.QUEUED).exists()


def test_a_dead_workers_queues_move_only_to_workers_that_serve_them(pizzaq_settings):
    pizzaq_settings(buckets=64)
    only_a, only_b = register("S0", queues=["a"]), register("S1", queues=["b"])
    register("S2", queues=["a", "b"])
    die("S2")
    place("a", 60)
    place("b", 60)

    assert {o.queue for o in claim_all(only_b)} == {"b"}
    assert {o.queue for o in claim_all(only_a)} == {"a"}
    assert Order.objects.filter(status=Status.RUNNING).count() == 120


def test_orders_of_a_queue_nobody_serves_wait_until_a_worker_for_it_joins(pizzaq_settings):
    pizzaq_settings(buckets=64)
    emails_only = register("S0", queues=["emails"])
    place("reports", 20)

    assert claim_all(emails_only) == []
    reporter = register("S1", queues=["reports"])

    assert len(claim_all(reporter)) == 20


def test_workers_serving_every_queue_take_the_queues_nobody_names_and_share_the_named_ones(pizzaq_settings):
    pizzaq_settings(buckets=64)
    emails_only, anything = register("S0", queues=["emails"]), register("S1")
    place("emails", 100)
    place("reports", 50)

    mine = claim_all(emails_only)
    theirs = claim_all(anything)

    assert {o.queue for o in mine} == {"emails"}
    assert {o.queue for o in theirs} == {"emails", "reports"}
    assert len(mine) + len(theirs) == 150 and len([o for o in theirs if o.queue == "reports"]) == 50


def test_when_the_last_worker_naming_a_queue_dies_workers_for_every_queue_take_it_over(pizzaq_settings):
    pizzaq_settings(buckets=64)
    register("S0", queues=["emails"])
    anything = register("S1")
    die("S0")
    place("emails", 30)

    assert not Bucket.objects.filter(queue="emails").exists()
    assert len(claim_all(anything)) == 30


def test_a_take_away_order_waits_for_its_shop_to_serve_its_queue():
    register("S0", queues=["a"])
    place_order("bake", pinned_to="S0", queue="b")

    assert claim("S0", 10, queues=["a"]) == []
    assert Order.objects.get().status == Status.QUEUED


@pytest.mark.parametrize("queue", ["", "has space", "x" * 101, 7, None, "semi;colon"])
def test_a_queue_name_must_be_a_plain_word(queue):
    with pytest.raises(OrderRejected) as rejected:
        place_order("bake", queue=queue)
    assert rejected.value.field == "queue"
    assert not Order.objects.exists()


# --- pausing and resuming --------------------------------------------------------------


@pytest.fixture
def operator(db):
    user = get_user_model().objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="operate_queue"))
    return user


def bearer(client, user):
    _, key = create_token(user, "tests")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def test_a_paused_queue_is_not_claimed_until_it_is_resumed_and_each_change_names_who_did_it():
    place("emails", 5)
    place("reports", 5)

    assert act_on("pause", "emails", "olga").ok
    assert {o.queue for o in claim("S0", 100)} == {"reports"}
    assert Order.objects.filter(queue="emails", status=Status.QUEUED).count() == 5
    assert act_on("resume", "emails", "piet").ok

    assert {o.queue for o in claim("S0", 100)} == {"emails"}
    assert [(e.actor, e.data) for e in Event.objects.filter(kind=EventKind.ACTION).order_by("id")] == [
        ("olga", {"action": "pause", "queue": "emails"}), ("piet", {"action": "resume", "queue": "emails"})]


def test_pausing_a_paused_queue_or_resuming_an_open_one_is_refused_and_changes_nothing():
    assert act_on("pause", "emails", "olga").ok

    again, open_one = act_on("pause", "emails", "piet"), act_on("resume", "reports", "piet")
    bad = act_on("pause", "no spaces please", "piet")

    assert (again.status, open_one.status, bad.status) == (409, 409, 400)
    assert "already paused (by olga" in again.message
    assert Queue.objects.get(name="emails").paused_by == "olga" and not Queue.objects.filter(name="reports").exists()
    assert Event.objects.filter(kind=EventKind.ACTION).count() == 1


def test_the_commands_pause_and_resume_a_queue_and_refuse_with_a_clear_error():
    out = StringIO()
    call_command("pausequeue", "emails", "--actor", "ops", stdout=out)
    assert "queue emails paused" in out.getvalue() and Queue.objects.get(name="emails").is_paused

    with pytest.raises(CommandError, match="already paused"):
        call_command("pausequeue", "emails")
    call_command("resumequeue", "emails", stdout=out)
    assert not Queue.objects.get(name="emails").is_paused


def test_the_api_lists_pauses_and_resumes_queues_for_operators_only(client, operator):
    watcher = get_user_model().objects.create_user("wim", password="pw", is_staff=True)
    place("emails", 3)
    register("S0", queues=["emails"])

    refused = bearer(client, watcher).post("/api/queues/emails/pause")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert not Queue.objects.filter(paused_at__isnull=False).exists()

    api = bearer(client, operator)
    assert api.post("/api/queues/emails/pause").status_code == 200
    assert api.post("/api/queues/emails/pause").status_code == 409
    [emails] = [row for row in api.get("/api/queues").json()["results"] if row["name"] == "emails"]
    assert emails | {"paused_at": None} == {"name": "emails", "queued": 3, "running": 0, "done_last_minute": 0,
                                            "paused": True, "paused_by": "olga", "paused_at": None, "served_by": ["S0"],
                                            "limit": None}
    assert api.post("/api/queues/emails/resume").json() == {"message": "queue emails resumed"}
