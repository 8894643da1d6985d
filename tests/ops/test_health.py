"""GET /healthz and /readyz: up, and ready to serve the queue, or saying why not."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.ops.helpers import http_json, start_web
from workers import leadership
from workers.models import NotifierLease

pytestmark = pytest.mark.django_db

UNREACHABLE_DATABASE = "postgres://postgres@127.0.0.1:1/pizzaq"


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_a_database_migrations_and_a_leading_notifier(client):
    leadership.hold_or_take("N1", 30)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["ready"] is True
    assert all(check["ok"] for check in response.json()["checks"].values())


def test_readyz_fails_when_no_notifier_has_ever_led(client):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert body["checks"]["database"] == {"ok": True}
    assert "no notifier leader has ever been seen" in body["checks"]["notifier"]["reason"]
    assert body["reason"] == body["checks"]["notifier"]["reason"]


def test_readyz_fails_when_the_leader_went_silent(client):
    leadership.hold_or_take("N1", 30)
    NotifierLease.objects.update(expires_at=timezone.now() - timedelta(minutes=5))

    response = client.get("/readyz")

    assert response.status_code == 503
    assert "no notifier leader seen for 300 s (the last was N1)" in response.json()["reason"]


@pytest.mark.django_db(transaction=True)
def test_readyz_names_migrations_not_applied(client):
    leadership.hold_or_take("N1", 30)
    call_command("migrate", "orders", "0002", verbosity=0)
    try:
        response = client.get("/readyz")
    finally:
        call_command("migrate", "orders", verbosity=0)

    assert response.status_code == 503
    assert "orders.0003_prunedtally" in response.json()["checks"]["migrations"]["reason"]
    assert client.get("/readyz").status_code == 200


@pytest.mark.system
def test_readyz_fails_with_the_reason_when_the_database_is_unreachable(processes):
    web = start_web(processes, DATABASE_URL=UNREACHABLE_DATABASE)

    status, body = http_json(f"{web}/readyz")

    assert status == 503
    assert body["ready"] is False
    assert body["reason"].startswith("database unreachable: ")
    assert list(body["checks"]) == ["database"]
    assert http_json(f"{web}/healthz") == (200, {"status": "ok"})
