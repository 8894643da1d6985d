"""The JSON API: place orders, read one, list them. Bearer token or staff session."""

import json
import logging
import math
import uuid
from functools import wraps

from django.conf import settings as django_settings
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.urls import reverse
from django.utils.functional import SimpleLazyObject
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from orders import dependencies, ratelimit, services, tokens
from orders.nesting import nests_deeper
from orders.presenting import order_record, order_summary
from orders.models import Order, Status
from orders.specs import OrderRejected, OrderSpec, check_client_kind
from orders import conf

log = logging.getLogger("pizzaq.api")

PLACE_FIELDS = {"kind", "queue", "payload", "priority", "routing_key", "delay", "ttl", "max_attempts", "pinned_to",
                "unique_key", "unique_scope", "unique_period", "concurrency_key", "after", "after_policy"}
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
    """(user, rate-limit key, via_token) from a Bearer token or a staff session."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, key = header.partition(" ")
        token = tokens.authenticate_token(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        # The user is fetched only by a view that asks who it is (placing does not).
        return (SimpleLazyObject(lambda: token.user), f"token:{token.pk}", True) if token else (None, "", True)
    if request.user.is_authenticated and request.user.is_staff:
        return request.user, f"user:{request.user.pk}", False
    return None, "", False


def api_view(*methods):
    """Method check, authentication, and CSRF for session (not token) callers; a database
    that cannot be reached is a 503 to retry, not a 500."""

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            try:
                return _checked(view, methods, request, *args, **kwargs)
            except (OperationalError, InterfaceError) as error:
                # A restart or a failover: the client's retry, a moment later, will do.
                log.warning("%s %s: the database is unreachable (%s)", request.method, request.path, error)
                return api_error(503, "unavailable", "the database cannot be reached just now; retry in a "
                                 "moment (an order sent as it went away may have been placed: look before "
                                 "placing it again)", Retry_After="1")

        wrapper.allowed_methods = methods
        return wrapper

    return decorate


def _checked(view, methods, request, *args, **kwargs):
    if request.method not in methods:
        return api_error(405, "method_not_allowed", f"{request.method} is not allowed here",
                         Allow=", ".join(methods))
    user, request.client_key, via_token = _authenticate(request)
    if user is None:
        return api_error(401, "unauthorized", "a valid API token is required "
                         "(Authorization: Bearer <token>)", WWW_Authenticate="Bearer")
    request.api_user = user
    if via_token:
        return view(request, *args, **kwargs)
    # A browser session carries cookies a third-party page could ride on.
    return csrf_protect(view)(request, *args, **kwargs)


def rate_limited(client_key: str, orders: int):
    """A 429 if placing ``orders`` would pass the client's limit, else None."""
    wait = ratelimit.take(client_key, orders)
    if not wait:
        return None
    limit = conf.get()
    return api_error(429, "rate_limited", f"more than {limit.rate_limit} orders in {limit.rate_window:g} s; "
                     f"retry in {math.ceil(wait)} s", Retry_After=str(math.ceil(wait)))


def order_json(order: Order) -> dict:
    return {**order_record(order), "url": reverse("api-order", args=[order.id])}


# Levels above the payload: the order object, and a bulk body's {"orders": [...]} too.
ORDER_LEVELS, BULK_LEVELS = 1, 3


def _read_json_body(request, bulk: bool = False):
    """The decoded body, or an error response; the size is checked before reading, the nesting before parsing."""
    settings = conf.get()
    limit = (settings.max_payload_bytes + ENVELOPE_BYTES) * (settings.max_bulk if bulk else 1)
    # Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE on its own; say so in our words first.
    limit = min(limit, django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE or limit)
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        return None, api_error(400, "bad_request", "Content-Length is not a number")
    if length > limit:
        return None, api_error(413, "payload_too_large", f"request body is {length} bytes; the limit is {limit}")
    content_type = request.content_type or "application/json"
    if content_type != "application/json":
        return None, api_error(415, "unsupported_media_type", "send the order as application/json")
    raw = request.body or b"null"
    try:
        # json.loads recurses once a level: a body nested thousands deep would raise
        # RecursionError (a 500) before the payload's own depth check could refuse it.
        if nests_deeper(raw, settings.max_payload_depth + (BULK_LEVELS if bulk else ORDER_LEVELS)):
            depth = settings.max_payload_depth
            return None, api_error(400, "invalid", f"payload nests deeper than {depth} levels", "payload")
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as error:
        return None, api_error(400, "malformed_json", f"request body is not valid JSON: {error}")


def _spec(body) -> OrderSpec:
    """One order of a request as an OrderSpec, or OrderRejected saying what is wrong."""
    if not isinstance(body, dict):
        raise OrderRejected("an order must be a JSON object with at least a kind")
    unknown = sorted(set(body) - PLACE_FIELDS)
    if unknown:
        raise OrderRejected(f"unknown field(s): {', '.join(unknown)}", field=unknown[0], code="unknown_field")
    if "kind" not in body:
        raise OrderRejected("kind is required", field="kind")
    check_client_kind(body["kind"])
    return OrderSpec(**body)


def _rejected(rejected: OrderRejected, index: int | None = None):
    status = 413 if rejected.code == "payload_too_large" else 400
    message = rejected.message if index is None else f"order {index}: {rejected.message}"
    return api_error(status, rejected.code, message, rejected.field)


def _accepted(orders: list[Order]) -> list[dict]:
    """Each order's summary; ``duplicate``: it was placed before, under the same unique key."""
    return [{**order_summary(o), "url": reverse("api-order", args=[o.id]), "duplicate": o.duplicate} for o in orders]


def _place(request):
    body, error = _read_json_body(request)
    if error:
        return error
    try:
        spec = _spec(body)
    except OrderRejected as rejected:
        return _rejected(rejected)
    if limited := rate_limited(request.client_key, 1):
        return limited
    try:
        [order] = services.place_orders([spec])
    except OrderRejected as rejected:
        return _rejected(rejected)
    # place_orders has committed: the 202 promises durability. A duplicate is the order
    # that already held the unique key: 200, nothing new was accepted.
    [accepted] = _accepted([order])
    response = JsonResponse(accepted, status=200 if order.duplicate else 202)
    response["Location"] = accepted["url"]
    return response


@api_view("POST")
def orders_bulk(request):
    """Place up to PIZZAQ_MAX_BULK orders at once: all of them, or none."""
    body, error = _read_json_body(request, bulk=True)
    if error:
        return error
    orders = body.get("orders") if isinstance(body, dict) else None
    limit = conf.get().max_bulk
    if not isinstance(orders, list) or not orders:
        return api_error(400, "invalid", 'the body must be {"orders": [...]} with at least one order', "orders")
    if len(orders) > limit:
        return api_error(413, "too_many_orders", f"{len(orders)} orders in one request; the limit is {limit}",
                         "orders")
    specs = []
    for index, item in enumerate(orders):
        try:
            specs.append(_spec(item))
        except OrderRejected as rejected:
            return _rejected(rejected, index)
    if limited := rate_limited(request.client_key, len(specs)):
        return limited
    try:
        placed = services.place_orders(specs)
    except OrderRejected as rejected:
        return _rejected(rejected, rejected.index)
    return JsonResponse({"orders": _accepted(placed)}, status=202)


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
    return JsonResponse({**order_json(order), **neighbours_json(order)})


def neighbours_json(order: Order) -> dict:
    """The orders this one waits (or waited) for, and those that wait for it, each with
    its status (the first dependencies.SHOWN of each)."""
    def brief(others):
        return [{"id": str(other.id), "kind": other.kind, "status": other.status,
                 "url": reverse("api-order", args=[other.id])} for other in others]

    return {"waiting_for": order.waiting_for, "after": brief(dependencies.waits_for(order.pk)),
            "followed_by": brief(dependencies.waited_for_by(order.pk))}
