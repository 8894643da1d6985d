"""Cancelling a running order: it ends cancelled at once, its worker tells the handler
(NOTIFY, or the next heartbeat), and whatever the handler returns is discarded."""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from orders import services
from orders.models import Order, Status
from orders.services import place_order
from orders.tokens import create_token
from tests.conftest import wait_for


def running(order):
    return lambda: Order.objects.filter(pk=order.pk, status=Status.RUNNING).exists()


def evidence(path):
    return path.read_text() if path.exists() else ""


@pytest.fixture
def operator_api(client, transactional_db):
    user = get_user_model().objects.create_user("olga", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="operate_queue"))
    _, key = create_token(user, "tests")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def test_a_running_order_cancelled_from_the_api_stops_its_handler_within_two_seconds(start_worker, operator_api,
                                                                                     tmp_path):
    start_worker()
    path = tmp_path / "evidence"
    order = place_order("patient", {"seconds": 30, "path": str(path)})
    wait_for(running(order), message="the order to start")

    answer = operator_api.post(f"/api/orders/{order.pk}/cancel")
    asked = time.monotonic()

    assert answer.status_code == 200 and "its worker was told" in answer.json()["message"]
    assert Order.objects.get(pk=order.pk).status == Status.CANCELLED
    wait_for(lambda: evidence(path) == "stopped", timeout=2, message="the handler to see the cancel")
    assert time.monotonic() - asked < 2
    time.sleep(0.5)  # the worker hands its result in, and the fence refuses it
    cancelled = Order.objects.get(pk=order.pk)
    assert (cancelled.status, cancelled.result, cancelled.last_error) == (Status.CANCELLED, None, "cancelled while running")
    assert [entry["outcome"] for entry in cancelled.history] == ["cancelled"]


def test_a_handler_that_ignores_the_cancel_has_its_result_discarded(start_worker, tmp_path):
    start_worker()
    path = tmp_path / "evidence"
    order = place_order("append", {"seconds": 1, "path": str(path)})
    wait_for(running(order), message="the order to start")

    assert services.cancel(order.pk)
    wait_for(lambda: path.exists(), message="the handler to run")
    time.sleep(1.5)  # it returns, and its result is handed in

    cancelled = Order.objects.get(pk=order.pk)
    assert cancelled.status == Status.CANCELLED and cancelled.result is None


def test_a_cancel_reaches_the_handler_by_heartbeat_when_no_notification_comes(start_worker, tmp_path, monkeypatch):
    monkeypatch.setattr("workers.incarnation.listen_params", lambda: None)  # as behind a transaction pooler
    start_worker()
    path = tmp_path / "evidence"
    order = place_order("patient", {"seconds": 30, "path": str(path)})
    wait_for(running(order), message="the order to start")

    services.cancel(order.pk)

    wait_for(lambda: evidence(path) == "stopped", timeout=2, message="the heartbeat to find the cancel")
