"""The dashboard's pages, its place-order form, and the actions staff take from it."""

import json

from django.contrib.admin.views.decorators import staff_member_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from orders import services
from orders.api import api_error, rate_limited
from orders.handlers import registered_kinds
from orders.models import DEFAULT_QUEUE, Order, Status
from orders.presenting import order_summary, progress_of
from orders.specs import OrderRejected, check_client_kind
from workers import actions


@staff_member_required
def index(request):
    return render(request, "dashboard/index.html", {
        "kinds": registered_kinds(), "statuses": Status.values,
        "can_operate": actions.may_operate(request.user),
    })


@staff_member_required
def order_page(request, order_id):
    order = get_object_or_404(Order, pk=order_id)
    return render(request, "dashboard/order.html", {
        "order": order, "progress": progress_of(order), "payload": json.dumps(order.payload, indent=2),
        "result": json.dumps(order.result, indent=2) if order.result is not None else "",
        "can_operate": actions.may_operate(request.user),
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
        "queue": form.get("queue", "").strip() or DEFAULT_QUEUE,
        "priority": _number(form.get("priority", ""), "priority", int) or 0,
        "routing_key": form.get("routing_key", "").strip() or None,
        "delay": _number(form.get("delay", ""), "delay"),
        "ttl": _number(form.get("ttl", ""), "ttl"),
        "pinned_to": form.get("pinned_to", "").strip(),
    }
    check_client_kind(form.get("kind", ""))
    return form.get("kind", ""), payload, options


@staff_member_required
@require_POST
def place(request):
    """The place-order form; answers JSON so the page can show errors inline."""
    try:
        kind, payload, options = _form_to_options(request.POST)
    except OrderRejected as rejected:
        return api_error(400, rejected.code, rejected.message, rejected.field)
    # The same per-person limit as the API's staff sessions.
    if limited := rate_limited(f"user:{request.user.pk}", 1):
        return limited
    try:
        order = services.place_order(kind, payload, **options)
    except OrderRejected as rejected:
        return api_error(400, rejected.code, rejected.message, rejected.field)
    return JsonResponse({**order_summary(order), "url": reverse("dashboard-order", args=[order.id])}, status=202)


@staff_member_required
@require_POST
def act(request, action: str, target):
    """A button: ``action`` on ``target`` (a worker or queue name, an order id), as the
    person signed in, with the permission and the audit trail of every screen."""
    result = actions.perform(request.user, action, str(target))
    if not result.ok:
        return api_error(result.status, result.code, result.message)
    return JsonResponse({"ok": True, "message": result.message})
