"""The JSON API: 202 only after commit, reads, listing, and a clear 4xx for bad input."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError

from orders import services, tokens
from orders.models import ApiToken, Order, Status
from orders.services import complete, place_order
from orders.tokens import create_token
from orders import conf
from tests.claims import claim
from tests.orders.test_place import count_from_another_connection


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("cashier", password="secret-pass")


@pytest.fixture
def api(client, user):
    """A client that sends the user's bearer token."""
    _, key = create_token(user, "tests")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client


def post_json(client, body, **extra):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/orders", data=data, content_type="application/json", **extra)


@pytest.mark.django_db(transaction=True)
def test_place_answers_202_with_an_id_only_once_the_order_is_committed(api):
    response = post_json(api, {"kind": "bake", "payload": {"pizza": "funghi"}, "priority": 10})

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["url"] == f"/api/orders/{body['id']}"
    assert response["Location"] == body["url"]
    order = Order.objects.get(pk=body["id"])
    assert count_from_another_connection(order.pk) == 1
    assert (order.kind, order.payload, order.priority) == ("bake", {"pizza": "funghi"}, 10)


@pytest.mark.django_db
def test_get_order_shows_status_attempt_worker_result_and_times(api):
    order = place_order("bake")
    [running] = claim("S2", 1)
    complete(running, "S2", running.attempt, {"baked": "margherita"})

    body = api.get(f"/api/orders/{order.pk}").json()

    assert body["status"] == "done" and body["attempt"] == 1 and body["worker"] == "S2"
    assert body["result"] == {"baked": "margherita"} and body["error"] is None
    assert body["created_at"] and body["started_at"] and body["finished_at"]
    assert body["history"][0]["worker"] == "S2"


@pytest.mark.django_db
def test_list_filters_by_status_and_kind_and_pages_with_a_cursor(api):
    for _ in range(3):
        place_order("bake")
    place_order("deliver")
    Order.objects.filter(kind="deliver").update(status=Status.DONE)

    first = api.get("/api/orders", {"kind": "bake", "status": "queued", "limit": 2}).json()
    second = api.get("/api/orders", {"kind": "bake", "status": "queued", "limit": 2,
                                     "cursor": first["next_cursor"]}).json()

    assert [o["kind"] for o in first["results"]] == ["bake", "bake"]
    assert len(second["results"]) == 1 and second["next_cursor"] is None
    ids = [o["id"] for o in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert [o["kind"] for o in api.get("/api/orders", {"status": "done"}).json()["results"]] == ["deliver"]


@pytest.mark.django_db
def test_page_size_is_capped(api, pizzaq_settings):
    pizzaq_settings(max_page_size=2)
    for _ in range(4):
        place_order("noop")

    assert len(api.get("/api/orders", {"limit": 1000}).json()["results"]) == 2


@pytest.mark.django_db
def test_unknown_order_is_404(api):
    response = api.get("/api/orders/01a20961-d40d-706e-b083-2b35d13d6c4c")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


BAD_PLACEMENTS = [
    ("{not json", 400, "malformed_json"),
    ([1, 2], 400, "invalid"),
    ({"payload": {}}, 400, "invalid"),
    ({"kind": "pineapple"}, 400, "unknown_kind"),
    ({"kind": "bake", "priority": 101}, 400, "invalid"),
    ({"kind": "bake", "priority": -101}, 400, "invalid"),
    ({"kind": "bake", "payload": "margherita"}, 400, "invalid"),
    ({"kind": "bake", "size": "XL"}, 400, "unknown_field"),
    ({"kind": "bake", "payload": {"notes": "x" * 70_000}}, 413, "payload_too_large"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("body, status, code", BAD_PLACEMENTS)
def test_bad_placements_get_a_clear_4xx_and_write_nothing(api, body, status, code):
    response = post_json(api, body)

    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_body_over_the_limit_is_refused_before_it_is_parsed(api, pizzaq_settings):
    pizzaq_settings(max_payload_bytes=1024)
    huge = json.dumps({"kind": "bake", "payload": {"notes": "x" * 40_000}})

    response = post_json(api, huge)

    assert response.status_code == 413 and Order.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "Bearer pzq_wrong", "Basic abc", "Bearer "])
def test_missing_or_wrong_token_is_401_and_writes_nothing(client, user, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = post_json(client, {"kind": "bake"}, **extra)

    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert client.get("/api/orders", **extra).status_code == 401
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_revoked_and_expired_tokens_are_refused(client, user):
    from django.utils import timezone

    token, key = create_token(user, "old")
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())

    response = post_json(client, {"kind": "bake"}, HTTP_AUTHORIZATION=f"Bearer {key}")

    assert response.status_code == 401 and Order.objects.count() == 0


@pytest.mark.django_db
def test_wrong_method_is_405_with_allow(api):
    order = place_order("bake")

    response = api.delete(f"/api/orders/{order.pk}")

    assert response.status_code == 405 and response["Allow"] == "GET"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert Order.objects.filter(status=Status.QUEUED).count() == 1


@pytest.mark.django_db
def test_tokens_are_stored_only_as_hashes_and_record_last_use(api, user):
    key = api.defaults["HTTP_AUTHORIZATION"].split()[1]
    api.get("/api/orders")

    token = ApiToken.objects.get(user=user)
    assert key not in json.dumps(list(ApiToken.objects.values()), default=str)
    assert token.last_used_at is not None
    # Written at most once a minute, not on every request ...
    first_use = token.last_used_at
    api.get("/api/orders")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first_use
    # ... and again once a minute has gone by.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first_use - timedelta(minutes=2))
    api.get("/api/orders")
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first_use


@pytest.mark.django_db
def test_a_staff_session_may_read_but_a_plain_session_may_not(client, user):
    client.force_login(user)
    assert client.get("/api/orders").status_code == 401

    user.is_staff = True
    user.save()
    assert client.get("/api/orders").status_code == 200


@pytest.mark.django_db
def test_a_staff_session_needs_the_csrf_token_to_place(user):
    from django.test import Client

    user.is_staff = True
    user.save()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    response = post_json(browser, {"kind": "bake"})

    assert response.status_code == 403 and Order.objects.count() == 0


@pytest.mark.django_db
def test_bulk_placement_is_all_or_nothing_and_bounded(api, pizzaq_settings):
    pizzaq_settings(max_bulk=3)
    url = "/api/orders/bulk"

    good = api.post(url, json.dumps({"orders": [{"kind": "noop"}, {"kind": "bake", "priority": 5}]}),
                    content_type="application/json")
    bad = api.post(url, json.dumps({"orders": [{"kind": "noop"}, {"kind": "pineapple"}]}),
                   content_type="application/json")
    too_many = api.post(url, json.dumps({"orders": [{"kind": "noop"}] * 4}), content_type="application/json")

    assert good.status_code == 202 and len(good.json()["orders"]) == 2
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("order 1: unknown kind")
    assert too_many.status_code == 413 and too_many.json()["error"]["code"] == "too_many_orders"
    assert Order.objects.count() == 2


@pytest.mark.django_db
def test_placing_past_the_rate_limit_is_429_with_retry_after(api, pizzaq_settings):
    from django.core.cache import cache

    cache.clear()
    pizzaq_settings(rate_limit=5, rate_window=60)

    answers = [post_json(api, {"kind": "noop"}).status_code for _ in range(5)]
    refused = post_json(api, {"kind": "noop"})

    assert answers == [202] * 5
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["code"] == "rate_limited"
    assert Order.objects.count() == 5


@pytest.mark.django_db
def test_deeply_nested_payloads_are_refused(api):
    payload = {}
    for _ in range(40):
        payload = {"a": payload}

    response = post_json(api, {"kind": "bake", "payload": payload})

    assert response.status_code == 400 and "nests deeper than 32" in response.json()["error"]["message"]
    assert Order.objects.count() == 0


def nested_text(depth: int, shape: str) -> str:
    """JSON text nested ``depth`` deep, built as text: json.dumps would itself recurse too deep."""
    if shape == "lists":
        return "[" * depth + "]" * depth
    if shape == "objects":
        return '{"a": ' * (depth - 1) + "{}" + "}" * (depth - 1)
    return "[" * depth  # unclosed: a parser recurses just as deep before it finds out


def as_request(url: str, text: str, field: str = "payload") -> str:
    """A body for ``url`` placing one bake order whose ``field`` is the JSON ``text``."""
    order = '{"kind": "bake", "' + field + '": ' + text + "}"
    return order if url == "/api/orders" else '{"orders": [' + order + "]}"


def assert_refused_as_too_deep(response):
    """The answer is the 400 for a body nested past PIZZAQ_MAX_PAYLOAD_DEPTH."""
    error = response.json()["error"]
    assert response.status_code == 400, error
    assert (error["code"], error["field"]) == ("invalid", "payload")
    assert error["message"] == f"payload nests deeper than {conf.get().max_payload_depth} levels"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/orders", "/api/orders/bulk"])
@pytest.mark.parametrize("shape", ["lists", "objects", "unclosed"])
@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_bodies_nested_thousands_deep_are_a_400_not_a_500(api, pizzaq_settings, url, shape, depth):
    # Room for 100,000 levels, so that the size limit does not refuse them first.
    pizzaq_settings(max_payload_bytes=1_000_000)

    response = api.post(url, as_request(url, nested_text(depth, shape)), content_type="application/json")

    assert_refused_as_too_deep(response)
    assert Order.objects.count() == 0


def nested_payload(depth: int) -> dict:
    """A payload ``depth`` levels deep, objects and lists by turns, whose strings hold
    brackets, quotes and backslashes that must not count as levels."""
    value = '"]}{[\\'
    for level in range(depth, 0, -1):
        value = {"next": value, "note": "[{\\"} if level % 2 else [value, "}]\\\""]
    return value


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/orders", "/api/orders/bulk"])
def test_a_payload_at_the_depth_limit_is_placed_and_one_level_more_is_not(api, url):
    limit = conf.get().max_payload_depth

    at_limit = api.post(url, as_request(url, json.dumps(nested_payload(limit))), content_type="application/json")
    past = api.post(url, as_request(url, json.dumps(nested_payload(limit + 1))), content_type="application/json")

    assert at_limit.status_code == 202, at_limit.json()
    assert_refused_as_too_deep(past)
    assert Order.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/orders", "/api/orders/bulk"])
def test_the_depth_limit_counts_the_levels_of_the_whole_body(api, url):
    limit = conf.get().max_payload_depth

    def place_with_priority(depth):
        body = as_request(url, nested_text(depth, "lists"), field="priority")
        return api.post(url, body, content_type="application/json")

    # Nested as deep as a payload may be, a priority is refused for what it is; one level
    # more, for its depth.
    within = place_with_priority(limit)
    past = place_with_priority(limit + 1)

    assert within.status_code == 400 and within.json()["error"]["field"] == "priority"
    assert_refused_as_too_deep(past)
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_brackets_inside_strings_do_not_count_as_nesting(api):
    # An escaped quote inside, then an escaped backslash just before the closing quote.
    notes = 'say "' + "[{" * 100 + '" \\'

    response = post_json(api, {"kind": "bake", "payload": {"notes": notes, "more": ["[{" * 100, {"{[": "]}"}]}})

    assert response.status_code == 202
    assert Order.objects.get().payload["notes"] == notes


@pytest.mark.django_db
def test_a_utf16_body_is_measured_as_it_is_parsed(api):
    # In UTF-16, "∀" is the bytes 00 22: a quote to a scan that reads bytes as ASCII,
    # which would then take the deep brackets after it for the inside of a string.
    body = as_request("/api/orders", '{"a": "\u2200", "b": ' + nested_text(5_000, "lists") + "}")

    response = post_json(api, body.encode("utf-16-le"))

    assert_refused_as_too_deep(response)
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_internal_kinds_cannot_be_placed_by_clients(api):
    response = post_json(api, {"kind": "django.task", "payload": {"task_path": "os.system", "args": ["true"]}})
    bulk = api.post("/api/orders/bulk", json.dumps({"orders": [{"kind": "django.task"}]}),
                    content_type="application/json")

    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_kind"
    assert bulk.status_code == 400
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_bulk_body_over_the_server_limit_is_a_json_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps({"orders": [{"kind": "noop", "payload": {"notes": "x" * 2_000}}] * 10})

    response = api.post("/api/orders/bulk", body, content_type="application/json")

    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert Order.objects.count() == 0


def unreachable(*args, **kwargs):
    raise OperationalError("connection to server failed: Connection refused")


SAMPLE_ID = "01a2325d-6a07-7311-ac03-3ddad241d0c3"


@pytest.mark.django_db
def test_placing_while_the_database_is_unreachable_answers_503_to_retry(api, monkeypatch):
    monkeypatch.setattr(services, "place_orders", unreachable)

    response = post_json(api, {"kind": "bake"})

    assert response.status_code == 503 and response["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "unavailable"
    assert "retry" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_any_request_while_the_database_is_unreachable_answers_503_not_500(api, monkeypatch):
    monkeypatch.setattr(tokens, "authenticate_token", unreachable)

    for response in (api.get("/api/orders"), api.get(f"/api/orders/{SAMPLE_ID}"), post_json(api, {"kind": "bake"})):
        assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
