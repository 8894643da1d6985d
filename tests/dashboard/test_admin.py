"""The admin's own views drive the same services."""

import pytest
from django.contrib.auth import get_user_model

from django.utils import timezone

from orders.models import Order, Queue, Schedule, Status
from orders.services import fail, place_order
from tests.claims import claim
from workers.models import Event

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "r@example.com", "pw"))
    return client


def test_the_admin_retries_a_dead_order(admin_client):
    place_order("flaky", max_attempts=1)
    [order] = claim("S0", 1)
    fail(order, "S0", order.attempt, "RuntimeError: burnt")

    response = admin_client.post("/admin/orders/order/", {"action": "retry_selected", "_selected_action": [order.pk]},
                                 follow=True)

    assert Order.objects.get(pk=order.pk).status == Status.QUEUED
    assert f"order {order.pk} queued again" in [str(m) for m in response.context["messages"]]


def test_the_admin_adds_a_queue_pauses_and_resumes_it_and_the_trail_names_who(admin_client):
    admin_client.post("/admin/orders/queue/add/", {"name": "emails"})
    pause = admin_client.post("/admin/orders/queue/", {"action": "pause_selected", "_selected_action": ["emails"]},
                              follow=True)

    assert Queue.objects.get(name="emails").paused_by == "root"
    assert "queue emails paused" in [str(m) for m in pause.context["messages"]]
    admin_client.post("/admin/orders/queue/", {"action": "resume_selected", "_selected_action": ["emails"]})
    assert not Queue.objects.get(name="emails").is_paused
    assert [e.data["action"] for e in Event.objects.order_by("id")] == ["pause", "resume"]


def test_the_admin_refuses_a_queue_name_a_worker_could_not_serve(admin_client):
    response = admin_client.post("/admin/orders/queue/add/", {"name": "two words"})

    assert response.status_code == 200 and not Queue.objects.exists()


def test_the_admin_lists_and_filters_orders(admin_client):
    place_order("bake", priority=3)
    place_order("deliver")

    html = admin_client.get("/admin/orders/order/", {"kind": "bake"}).content.decode()

    assert "bake" in html and "1 order" in html


def test_staff_without_the_act_permission_are_not_offered_the_admin_actions(client):
    from django.contrib.auth.models import Permission

    from workers.membership import register
    from workers.models import Worker

    watcher = get_user_model().objects.create_user("watcher", password="pw", is_staff=True)
    watcher.user_permissions.add(*Permission.objects.filter(codename__in=["view_worker", "change_worker",
                                                                          "view_order", "change_order"]))
    client.force_login(watcher)
    register("S0")

    page = client.get("/admin/workers/worker/").content.decode()
    client.post("/admin/workers/worker/", {"action": "force_fail_workers",
                                           "_selected_action": [Worker.objects.get().pk]})

    assert "force_fail_workers" not in page
    assert Worker.objects.get().status == "alive"


SCHEDULE_FORM = {"name": "hourly-report", "cron": "@hourly", "every": "", "time_zone": "Europe/Berlin", "kind": "noop",
                 "payload": "{}", "queue": "default", "priority": "0", "ttl": "", "catch_up": "1"}


def test_the_admin_adds_a_schedule_with_its_next_slot_fires_it_and_disables_it(admin_client):
    admin_client.post("/admin/orders/schedule/add/", SCHEDULE_FORM)
    schedule = Schedule.objects.get()
    assert schedule.next_slot_at.minute == 0 and schedule.next_slot_at > timezone.now()

    fired = admin_client.post("/admin/orders/schedule/", {"action": "fire_selected", "_selected_action": ["hourly-report"]},
                              follow=True)
    order = Order.objects.get()
    assert (order.kind, Schedule.objects.get().last_order_id) == ("noop", order.id)
    assert f"schedule hourly-report fired now: order {order.id}" in [str(m) for m in fired.context["messages"]]
    admin_client.post("/admin/orders/schedule/", {"action": "disable_selected", "_selected_action": ["hourly-report"]})
    assert not Schedule.objects.get().enabled
    assert [(e.actor, e.data) for e in Event.objects.order_by("id")] == [
        ("root", {"action": "fire", "schedule": "hourly-report"}), ("root", {"action": "disable", "schedule": "hourly-report"})]


@pytest.mark.parametrize("change, message", [
    ({"cron": "every day"}, "cron expression"), ({"cron": "", "every": "0.1"}, "at least 1"),
    ({"kind": "no-such-kind"}, "unknown kind"), ({"time_zone": "Nowhere/Land"}, "unknown time zone"),
])
def test_the_admin_refuses_a_schedule_that_cannot_work_and_says_why(admin_client, change, message):
    response = admin_client.post("/admin/orders/schedule/add/", {**SCHEDULE_FORM, **change})

    assert response.status_code == 200 and not Schedule.objects.exists()
    assert message in response.content.decode()


def test_the_admin_does_not_rename_a_schedule_into_a_second_one(admin_client):
    admin_client.post("/admin/orders/schedule/add/", SCHEDULE_FORM)
    admin_client.post("/admin/orders/schedule/hourly-report/change/", {**SCHEDULE_FORM, "name": "renamed"})

    assert list(Schedule.objects.values_list("name", flat=True)) == ["hourly-report"]
