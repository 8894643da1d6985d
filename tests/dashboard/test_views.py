"""Dashboard pages and actions over HTTP: who may see, who may act, and bad input."""

import json

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils import timezone

from orders.models import Order, Status
from orders.services import fail, place_order
from pizzaq.dashboard.consumers import DashboardConsumer
from pizzaq.dashboard.snapshot import snapshot
from tests.claims import claim
from workers.membership import register
from workers.models import Event, EventKind, Worker, WorkerStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def watcher(client):
    """Staff who may watch but not act."""
    user = get_user_model().objects.create_user("watcher", password="pw", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="operate_queue"))
    client.force_login(user)
    return client


def dead_order():
    place_order("flaky", max_attempts=1)
    [order] = claim("S0", 1)
    fail(order, "S0", order.attempt, "RuntimeError: burnt")
    return order


def test_anonymous_visitors_get_the_login_page(client):
    response = client.get("/")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_non_staff_get_the_login_page(client):
    client.force_login(get_user_model().objects.create_user("pat", password="pw"))

    assert client.get("/").status_code == 302


def test_staff_see_the_dashboard_with_the_menu_of_kinds(watcher):
    response = watcher.get("/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<option selected>bake</option>' in html and "Place order" in html
    assert 'data-can-operate="false"' in html


def test_the_order_page_shows_every_attempt(watcher):
    order = place_order("bake")
    [running] = claim("S0", 1)
    fail(running, "S0", running.attempt, "RuntimeError: oven cold")

    html = watcher.get(f"/orders/{order.pk}").content.decode()

    assert "RuntimeError: oven cold" in html and "<td>S0</td>" in html and "failed" in html


def test_the_order_page_shows_a_running_orders_progress(watcher):
    place_order("bake")
    [running] = claim("S0", 1)
    Order.objects.filter(pk=running.pk).update(progress_value=0.4, progress_note="720p done", progress_at=timezone.now())

    html = watcher.get(f"/orders/{running.pk}").content.decode()

    assert '<div id="order-progress">' in html and 'value="0.4"' in html
    assert "40%" in html and "720p done" in html


def test_the_order_page_hides_the_progress_of_an_order_that_reported_none(watcher):
    order = place_order("bake")

    assert '<div id="order-progress" hidden>' in watcher.get(f"/orders/{order.pk}").content.decode()


@pytest.mark.parametrize("form, field, message", [
    ({"kind": "bake", "payload": "{not json"}, "payload", "payload is not valid JSON"),
    ({"kind": "pineapple", "payload": "{}"}, "kind", "unknown kind 'pineapple'"),
    ({"kind": "bake", "payload": "{}", "priority": "500"}, "priority", "priority must be between -100 and 100"),
    ({"kind": "bake", "payload": "{}", "delay": "soon"}, "delay", "delay must be a number"),
])
def test_bad_form_input_is_explained_and_places_nothing(watcher, form, field, message):
    response = watcher.post("/dashboard/orders", form)

    assert response.status_code == 400
    assert response.json()["error"]["field"] == field and message in response.json()["error"]["message"]
    assert Order.objects.count() == 0


def test_the_form_places_an_order(watcher):
    response = watcher.post("/dashboard/orders", {"kind": "deliver", "payload": '{"address": "1 Main St"}',
                                                  "priority": "9", "routing_key": "customer-7", "ttl": "60"})

    assert response.status_code == 202
    order = Order.objects.get(pk=response.json()["id"])
    assert (order.kind, order.priority, order.routing_key) == ("deliver", 9, "customer-7")
    assert order.payload == {"address": "1 Main St"} and order.expires_at is not None


def test_watchers_may_not_act(watcher):
    register("S0")
    order = dead_order()

    assert watcher.post("/dashboard/workers/S0/fail").status_code == 403
    assert watcher.post(f"/dashboard/orders/{order.pk}/retry").status_code == 403
    assert watcher.post(f"/dashboard/orders/{order.pk}/cancel").status_code == 403
    assert Worker.objects.get(name="S0").status == WorkerStatus.ALIVE
    assert Order.objects.get(pk=order.pk).status == Status.DEAD


def test_operators_retry_and_cancel_and_each_action_is_recorded_with_who(operator):
    order = dead_order()

    assert operator.post(f"/dashboard/orders/{order.pk}/retry").json()["ok"]
    assert Order.objects.get(pk=order.pk).status == Status.QUEUED
    assert operator.post(f"/dashboard/orders/{order.pk}/cancel").json()["ok"]
    assert Order.objects.get(pk=order.pk).status == Status.CANCELLED

    actions = list(Event.objects.filter(kind=EventKind.ACTION).values_list("actor", "message"))
    assert len(actions) == 2 and all(actor == "olga" for actor, _ in actions)


def test_the_snapshot_gives_each_button_the_address_it_posts_to(operator):
    register("S0")
    order = dead_order()
    state = snapshot()

    [dead] = state["dead"]
    assert operator.post(dead["retry_url"]).json()["ok"] and Order.objects.get(pk=order.pk).status == Status.QUEUED
    [shop] = state["workers"]
    assert operator.post(shop["fail_url"]).json()["ok"] and Worker.objects.get(name="S0").status == WorkerStatus.DEAD


def test_operators_force_fail_a_worker(operator):
    register("S0"), register("S1")

    response = operator.post("/dashboard/workers/S1/fail")

    assert response.status_code == 200 and "declared dead" in response.json()["message"]
    assert Event.objects.get(kind=EventKind.FORCE_FAILED).actor == "olga"


def test_acting_on_something_missing_or_finished_is_a_clear_error(operator):
    order = place_order("noop")

    missing = operator.post("/dashboard/workers/S9/fail")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert (error["code"], error["message"]) == ("not_found", "no worker S9")
    response = operator.post(f"/dashboard/orders/{order.pk}/retry")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    assert "only dead orders can be retried" in response.json()["error"]["message"]
    assert not Event.objects.filter(kind=EventKind.ACTION).exists()


def test_actions_need_post(operator):
    register("S0")

    assert operator.get("/dashboard/workers/S0/fail").status_code == 405


def test_the_form_neither_offers_nor_accepts_internal_kinds(watcher):
    html = watcher.get("/").content.decode()

    response = watcher.post("/dashboard/orders", {"kind": "django.task", "payload": "{}"})

    assert "django.task" not in html
    assert response.status_code == 400 and Order.objects.count() == 0


def test_the_form_shares_the_per_person_rate_limit(watcher, pizzaq_settings):
    from django.core.cache import cache

    cache.clear()
    pizzaq_settings(rate_limit=2, rate_window=60)

    answers = [watcher.post("/dashboard/orders", {"kind": "noop", "payload": "{}"}) for _ in range(3)]

    assert [a.status_code for a in answers] == [202, 202, 429] and answers[2]["Retry-After"]
    assert Order.objects.count() == 2


def test_the_api_the_dashboard_and_its_stream_show_an_order_in_one_shape(watcher):
    place_order("flaky", max_attempts=1)
    [order] = claim("S0", 1)
    fail(order, "S0", order.attempt, "Traceback (most recent call last):\n  oven.py\nRuntimeError: burnt")

    record = watcher.get(f"/api/orders/{order.pk}").json()
    streamed = json.loads(async_to_sync(DashboardConsumer.encode_json)(snapshot()))
    [dead_row] = streamed["dead"]
    [recent_row] = streamed["orders"]

    assert record["error"].startswith("Traceback") and record["error_summary"] == "RuntimeError: burnt"
    summary = {key: record[key] for key in ("id", "kind", "status", "priority", "worker", "attempt",
                                            "error_summary", "created_at", "finished_at", "progress")}
    assert {key: dead_row[key] for key in summary} == summary == {key: recent_row[key] for key in summary}
    assert dead_row["url"] == f"/orders/{order.pk}" and record["url"] == f"/api/orders/{order.pk}"
