"""The dashboard websocket: who may connect, what they get, and live changes."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from orders.services import place_order
from pizzaq.asgi import application
from pizzaq.dashboard import bridge
from pizzaq.dashboard.consumers import DashboardConsumer
from tests.workers.conftest import start_worker  # noqa: F401  (fixture)
from workers.membership import register
from workers.models import Worker

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def staff():
    return await database_sync_to_async(get_user_model().objects.create_user)("sam", is_staff=True)


@pytest.fixture(autouse=True)
async def stop_bridge():
    yield
    await bridge.stop()


def communicator(user):
    socket = WebsocketCommunicator(DashboardConsumer.as_asgi(), "/ws/dashboard")
    socket.scope["user"] = user
    return socket


async def next_snapshot_where(socket, predicate, timeout=8.0):
    """Read snapshots until one satisfies ``predicate``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        message = await socket.receive_json_from(timeout=left)
        if message["type"] == "snapshot" and predicate(message["data"]):
            return message["data"]
    raise AssertionError("no snapshot showed the change in time")


async def test_anonymous_visitors_are_refused():
    socket = communicator(AnonymousUser())

    connected, code = await socket.connect()

    assert not connected and code == 4403


async def test_logged_in_non_staff_are_refused():
    user = await database_sync_to_async(get_user_model().objects.create_user)("pat")
    socket = communicator(user)

    connected, code = await socket.connect()

    assert not connected and code == 4403


async def test_cross_origin_connections_are_refused(staff):
    socket = WebsocketCommunicator(application, "/ws/dashboard", headers=[(b"origin", b"http://evil.example")])

    connected, _ = await socket.connect()

    assert not connected


async def test_staff_get_a_snapshot_on_connect(staff):
    await database_sync_to_async(register)("S0")
    await database_sync_to_async(place_order)("bake", {"seconds": 1}, priority=7)
    socket = communicator(staff)

    connected, _ = await socket.connect()
    message = await socket.receive_json_from(timeout=5)

    assert connected and message["type"] == "snapshot"
    data = message["data"]
    assert data["summary"]["by_status"]["queued"] == 1
    assert data["summary"]["queued_by_priority"] == [[7, 1]]
    assert [w["name"] for w in data["workers"]] == ["S0"] and data["workers"][0]["buckets"] == 1024
    assert data["ring"]["owners"] == ["S0"] and set(data["ring"]["buckets"]) == {0}
    assert data["orders"][0]["priority"] == 7 and "bake" in data["kinds"]
    await socket.disconnect()


async def test_an_order_placed_from_another_connection_arrives_live(staff):
    socket = communicator(staff)
    await socket.connect()
    await socket.receive_json_from(timeout=5)

    # database_sync_to_async runs in another thread, with its own database connection.
    order = await database_sync_to_async(place_order)("deliver", {"address": "1 Main St"})

    data = await next_snapshot_where(socket, lambda d: any(o["id"] == str(order.id) for o in d["orders"]))
    assert data["summary"]["by_status"]["queued"] == 1
    await socket.disconnect()


async def test_the_recent_orders_filter_applies_to_later_snapshots(staff):
    await database_sync_to_async(place_order)("bake")
    await database_sync_to_async(place_order)("deliver")
    socket = communicator(staff)
    await socket.connect()
    await socket.receive_json_from(timeout=5)

    await socket.send_json_to({"filter": {"status": "queued", "kind": "deliver"}})

    data = await next_snapshot_where(socket, lambda d: len(d["orders"]) == 1)
    assert data["orders"][0]["kind"] == "deliver"
    await socket.disconnect()


def progress_of(data, order):
    """The order's status and progress (value and note) in a snapshot's recent orders."""
    row = next((row for row in data["orders"] if row["id"] == str(order.id)), None)
    return row and (row["status"], row["progress"] and (row["progress"]["value"], row["progress"]["note"]))


async def test_progress_a_running_handler_reports_arrives_live(staff, start_worker, pizzaq_settings,  # noqa: F811
                                                               progress_gate):
    pizzaq_settings(progress_interval=0)
    socket = communicator(staff)
    await socket.connect()
    await socket.receive_json_from(timeout=5)
    start_worker()

    order = await database_sync_to_async(place_order)(
        "report", {"gate": "progress", "steps": [[0.25, "144p done"], [0.5, "720p done"]]})

    await next_snapshot_where(socket, lambda d: progress_of(d, order) == ("running", (0.25, "144p done")), timeout=15)
    progress_gate.release()
    await next_snapshot_where(socket, lambda d: progress_of(d, order) == ("running", (0.5, "720p done")), timeout=15)
    progress_gate.release()
    await socket.disconnect()


async def next_message_of_type(socket, kind, timeout=5.0):
    while True:
        message = await socket.receive_json_from(timeout=timeout)
        if message["type"] == kind:
            return message


def grant_operate(user):
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="operate_queue"))
