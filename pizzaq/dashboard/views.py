"""The dashboard's pages and the actions staff take from it. Each action calls the same
service as the API and the admin, and records an Event with who did it."""

import json

from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from orders import services
from orders.api import api_error
from orders.handlers import registered_kinds
from orders.models import Order, Status
from orders.specs import OrderRejected
from workers.events import record
from workers.membership import force_fail
from workers.models import EventKind

OPERATE = "orders.operate_queue"
FORM_FIELDS = ("kind", "payload", "priority", "routing_key", "delay", "ttl", "pinned_to")


@staff_member_required
def index(request):
    return render(request, "dashboard/index.html", {
        "kinds": registered_kinds(), "statuses": Status.values,
        "can_operate": request.user.has_perm(OPERATE),
    })


@staff_member_required
def order_page(request, order_id):
    order = get_object_or_404(Order, pk=order_id)
    return render(request, "dashboard/order.html", {
        "order": order, "payload": json.dumps(order.payload, indent=2),
        "result": json.dumps(order.result, indent=2) if order.result is not None else "",
    })


def _number(raw: str, field: str, kind=float):
    """A form field as a number, or None when left blank."""
    if raw.strip() == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        raise OrderRejected(f"{field} must be a number", field=field) from None


def _form_to_options(form) -> tuple[str, object, dict]:
    try:
        payload = json.loads(form.get("payload") or "{}")
    except ValueError as error:
        raise OrderRejected(f"payload is not valid JSON: {error}", field="payload") from None
    options = {
        "priority": _number(form.get("priority", ""), "priority", int) or 0,
        "routing_key": form.get("routing_key", "").strip() or None,
        "delay": _number(form.get("delay", ""), "delay"),
        "ttl": _number(form.get("ttl", ""), "ttl"),
        "pinned_to": form.get("pinned_to", "").strip(),
    }
    return form.get("kind", ""), payload, options


@staff_member_required
@require_POST
def place(request):
    """The place-order form; answers JSON so the page can show errors inline."""
    try:
        kind, payload, options = _form_to_options(request.POST)
        order = services.place_order(kind, payload, **options)
    except OrderRejected as rejected:
        return api_error(400, rejected.code, rejected.message, rejected.field)
    return JsonResponse({"id": str(order.id), "status": order.status, "url": f"/orders/{order.id}"}, status=202)


def _act(request, describe, change):
    """Run a person's action and record it with their name, in one transaction."""
    if not request.user.has_perm(OPERATE):
        return api_error(403, "forbidden", "you may watch the queue but not act on it")
    actor = request.user.get_username()
    with transaction.atomic():
        outcome = change(actor)
        if outcome:
            record(EventKind.ACTION, f"{actor}: {describe}: {outcome.message}", actor=actor)
    if not outcome:
        return api_error(409, "conflict", outcome.message)
    return JsonResponse({"ok": True, "message": outcome.message})


@staff_member_required
@require_POST
def fail_worker(request, name):
    # force_fail writes its own FORCE_FAILED event naming the actor.
    if not request.user.has_perm(OPERATE):
        return api_error(403, "forbidden", "you may watch the queue but not act on it")
    outcome = force_fail(name, request.user.get_username())
    if not outcome:
        return api_error(404 if outcome.message.startswith("no worker") else 409, "conflict", outcome.message)
    return JsonResponse({"ok": True, "message": outcome.message})


@staff_member_required
@require_POST
def retry_order(request, order_id):
    return _act(request, f"retry order {order_id}", lambda actor: services.retry(order_id))


@staff_member_required
@require_POST
def cancel_order(request, order_id):
    return _act(request, f"cancel order {order_id}", lambda actor: services.cancel(order_id))
