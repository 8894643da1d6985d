"""Operating the queue over the JSON API: list and pause or resume named queues, cancel
or retry an order, list, fire, enable or disable schedules. The same actions, permission
and audit trail as the dashboard's (``workers.actions``); authentication and errors as
the rest of the API's."""

from django.http import JsonResponse

from orders.api import api_error, api_view
from orders.models import Schedule
from orders.presenting import schedule_summary
from workers.actions import perform
from workers.selectors import queue_rows

@api_view("GET")
def queues(request):
    """Every queue with its depth, whether it is paused, and which shops serve it."""
    return JsonResponse({"results": queue_rows()})


@api_view("GET")
def schedules(request):
    """Every schedule, with its next slot and when it last fired."""
    return JsonResponse({"results": [schedule_summary(schedule) for schedule in Schedule.objects.all()]})


@api_view("POST")
def named_action(request, name: str, action: str):
    """A queue's or a schedule's action: pause, resume; fire, enable, disable."""
    return _answer(perform(request.api_user, action, name))


@api_view("POST")
def order_action(request, order_id, action: str):
    return _answer(perform(request.api_user, action, str(order_id)))


def _answer(result):
    if result.ok:
        return JsonResponse({"message": result.message})
    return api_error(result.status, result.code, result.message)
