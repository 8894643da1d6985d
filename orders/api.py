"""The JSON API: place orders, read one, list them. Bearer token or staff session."""

import json
import uuid
from functools import wraps

from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from orders import services, tokens
from orders.models import Order, Status
from orders.specs import OrderRejected
from pizzaq import conf

PLACE_FIELDS = {"kind", "payload", "priority", "routing_key", "delay", "ttl", "max_attempts", "pinned_to"}
DEFAULT_PAGE_SIZE = 50
# Room for the fields around the payload, so the payload limit is what bites.
ENVELOPE_BYTES = 16 * 1024


def api_error(status: int, code: str, message: str, field: str | None = None, **headers) -> JsonResponse:
    body = {"error": {"code": code, "message": message}}
    if field:
        body["error"]["field"] = field
    response = JsonResponse(body, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _authenticate(request):
    """(user, via_token) from a Bearer token, else a staff session, else (None, False)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        user = tokens.authenticate(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        return user, True
    user = request.user if request.user.is_authenticated and request.user.is_staff else None
    return user, False


def api_view(*methods):
    """Method check, authentication, and CSRF for session (not token) callers."""

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return api_error(405, "method_not_allowed", f"{request.method} is not allowed here",
                                 Allow=", ".join(methods))
            user, via_token = _authenticate(request)
            if user is None:
                return api_error(401, "unauthorized", "a valid API token is required "
                                 "(Authorization: Bearer <token>)", WWW_Authenticate="Bearer")
            request.api_user = user
            if via_token:
                return view(request, *args, **kwargs)
            # A browser session carries cookies a third-party page could ride on.
            return csrf_protect(view)(request, *args, **kwargs)

        return wrapper

    return decorate


def order_json(order: Order) -> dict:
    return {
        "id": str(order.id),
        "url": reverse("api-order", args=[order.id]),
        "kind": order.kind,
        "status": order.status,
        "priority": order.priority,
        "payload": order.payload,
        "routing_key": order.routing_key,
        "bucket": order.bucket,
        "pinned_to": order.pinned_to or None,
        "worker": order.worker or None,
        "attempt": order.attempt,
        "max_attempts": order.max_attempts,
        "result": order.result,
        "error": order.last_error or None,
        "history": order.history,
        "created_at": order.created_at,
        "run_after": order.run_after,
        "expires_at": order.expires_at,
        "started_at": order.started_at,
        "finished_at": order.finished_at,
    }


def _read_json_body(request):
    """The decoded body, or an error response; the size is checked before reading."""
    limit = conf.get().max_payload_bytes + ENVELOPE_BYTES
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return None, api_error(400, "bad_request", "Content-Length is not a number")
    if length > limit:
        return None, api_error(413, "payload_too_large", f"request body is {length} bytes; the limit is {limit}")
    content_type = request.content_type or "application/json"
    if content_type != "application/json":
        return None, api_error(415, "unsupported_media_type", "send the order as application/json")
    try:
        return json.loads(request.body or b"null"), None
    except (ValueError, UnicodeDecodeError) as error:
        return None, api_error(400, "malformed_json", f"request body is not valid JSON: {error}")


def _place(request):
    body, error = _read_json_body(request)
    if error:
        return error
    if not isinstance(body, dict):
        return api_error(400, "invalid", "the body must be a JSON object with at least a kind")
    unknown = sorted(set(body) - PLACE_FIELDS)
    if unknown:
        return api_error(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}", unknown[0])
    if "kind" not in body:
        return api_error(400, "invalid", "kind is required", "kind")
    try:
        order = services.place_order(body.pop("kind"), body.pop("payload", None), **body)
    except OrderRejected as rejected:
        status = 413 if rejected.code == "payload_too_large" else 400
        return api_error(status, rejected.code, rejected.message, rejected.field)
    # place_order has committed: the 202 promises durability.
    response = JsonResponse({"id": str(order.id), "status": order.status,
                             "url": reverse("api-order", args=[order.id])}, status=202)
    response["Location"] = reverse("api-order", args=[order.id])
    return response


def _page_size(raw) -> int:
    if raw in (None, ""):
        return DEFAULT_PAGE_SIZE
    size = int(raw)
    if size < 1:
        raise ValueError
    return min(size, conf.get().max_page_size)


def _list(request):
    orders = Order.objects.order_by("-id")
    status, kind, cursor = (request.GET.get(name) for name in ("status", "kind", "cursor"))
    if status:
        if status not in Status.values:
            return api_error(400, "invalid", f"status must be one of {', '.join(Status.values)}", "status")
        orders = orders.filter(status=status)
    if kind:
        orders = orders.filter(kind=kind)
    try:
        limit = _page_size(request.GET.get("limit"))
        if cursor:
            orders = orders.filter(id__lt=uuid.UUID(cursor))
    except ValueError:
        return api_error(400, "invalid", "limit must be a positive integer and cursor an order id")
    page = list(orders[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return JsonResponse({"results": [order_json(o) for o in page],
                         "next_cursor": str(page[-1].id) if more else None})


@api_view("GET", "POST")
def orders_collection(request):
    return _place(request) if request.method == "POST" else _list(request)


@api_view("GET")
def order_detail(request, order_id):
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return api_error(404, "not_found", f"no order {order_id}")
    return JsonResponse(order_json(order))
