"""What people do to schedules (fire now, enable, disable) through the API and the
dashboard: the operate permission, the audit trail, clear refusals."""

import jsonschema
import pytest
from django.contrib.auth import get_user_model

from orders import schedules
from orders.models import Order, Schedule
from pizzaq.dashboard.snapshot import snapshot
from tests.orders.test_openapi import response_schema
from tests.workers.test_queues import bearer, operator  # noqa: F401 - fixture
from workers.models import Event, EventKind

pytestmark = pytest.mark.django_db


@pytest.fixture
def nightly():
    schedules.save_definition(Schedule(name="nightly", cron="0 3 * * *", time_zone="Europe/Berlin", kind="noop",
                                       payload={"report": "sales"}))


def test_the_api_lists_schedules_as_documented_and_fires_one_for_operators_only(client, operator, nightly):
    watcher = get_user_model().objects.create_user("wim", password="pw", is_staff=True)
    refused = bearer(client, watcher).post("/api/schedules/nightly/fire")
    assert refused.status_code == 403 and not Order.objects.exists()

    api = bearer(client, operator)
    fired = api.post("/api/schedules/nightly/fire")
    listed = api.get("/api/schedules").json()

    order = Order.objects.get()
    assert fired.status_code == 200 and str(order.id) in fired.json()["message"]
    assert order.payload == {"report": "sales"}
    jsonschema.validate(listed, response_schema("/api/schedules", "get", 200))
    [row] = listed["results"]
    assert (row["when"], row["enabled"], row["last_order_id"]) == (
        "At 03:00 every day (Europe/Berlin)", True, str(order.id))
    assert [(e.actor, e.data) for e in Event.objects.filter(kind=EventKind.ACTION)] == [
        ("olga", {"action": "fire", "schedule": "nightly"})]


def test_disabling_twice_or_an_unknown_schedule_is_refused_and_changes_nothing(client, operator, nightly):
    api = bearer(client, operator)
    assert api.post("/api/schedules/nightly/disable").status_code == 200
    again, unknown = api.post("/api/schedules/nightly/disable"), api.post("/api/schedules/weekly/fire")

    assert (again.status_code, unknown.status_code) == (409, 404)
    assert "already disabled" in again.json()["error"]["message"]
    assert not Schedule.objects.get().enabled and not Order.objects.exists()
    assert Event.objects.filter(kind=EventKind.ACTION).count() == 1


def test_the_dashboard_lists_schedules_with_their_next_slot_and_buttons(nightly):
    [row] = snapshot()["schedules"]

    assert row["next_slot_at"].hour in (1, 2)  # 03:00 in Berlin, in UTC
    assert row["fire_url"] == "/dashboard/schedules/nightly/fire"
    assert row["last_order_url"] is None


def test_a_dashboard_button_fires_a_schedule_as_the_person_signed_in(client, operator, nightly):
    client.force_login(operator)
    answer = client.post("/dashboard/schedules/nightly/fire")

    assert answer.status_code == 200 and Order.objects.count() == 1
    assert snapshot()["schedules"][0]["last_order_url"] == f"/orders/{Order.objects.get().id}"
