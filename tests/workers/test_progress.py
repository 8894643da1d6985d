"""Progress a handler reports while a worker runs it reaches the API at once, and a report
held back by the interval is written by the worker's heartbeat."""

from orders.models import Order, Status
from orders.services import place_order
from tests.conftest import wait_for
from tests.orders.test_api import api, user  # noqa: F401  (fixtures)


def shown(api, order):  # noqa: F811
    """The order's status and progress (value and note) as the API answers them."""
    body = api.get(f"/api/orders/{order.pk}").json()
    progress = body["progress"] and (body["progress"]["value"], body["progress"]["note"])
    return body["status"], progress


def test_progress_reported_by_a_running_handler_appears_on_the_api_while_it_runs(
        start_worker, pizzaq_settings, progress_gate, api):  # noqa: F811
    pizzaq_settings(progress_interval=0)
    start_worker()
    order = place_order("report", {"gate": "progress", "steps": [[0.25, "144p done"], [0.5, "720p done"]]})

    wait_for(lambda: shown(api, order) == ("running", (0.25, "144p done")), message="the first report")
    progress_gate.release()
    wait_for(lambda: shown(api, order) == ("running", (0.5, "720p done")), message="the second report")
    progress_gate.release()
    wait_for(lambda: shown(api, order)[0] == "done", message="the order to finish")


def test_a_report_held_back_by_the_interval_is_written_by_the_heartbeat(start_worker, pizzaq_settings, progress_gate):
    pizzaq_settings(progress_interval=2)
    progress_gate.release()  # the handler reports 0.25, then 0.5 at once, and waits
    start_worker()
    order = place_order("report", {"gate": "progress", "steps": [[0.25, "started"], [0.5, "halfway"]]})

    wait_for(lambda: Order.objects.get(pk=order.pk).progress_note == "halfway", message="the held report")
    assert Order.objects.get(pk=order.pk).status == Status.RUNNING
