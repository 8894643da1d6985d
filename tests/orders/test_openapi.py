"""docs/openapi.json against the code: the routes and methods match, answers fit the
schemas, and a fuzz test generated from it finds no 5xx and no partial write."""

import json

import jsonschema
import pytest
from django.urls import URLPattern, get_resolver, resolve
from django.utils import timezone
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from orders.models import Order
from orders.services import place_order
from orders import conf
from tests.claims import claim
from tests.conftest import ROOT
from tests.orders.test_api import api, post_json, user  # noqa: F401  (fixtures)

SPEC = json.loads((ROOT / "docs" / "openapi.json").read_text())
SAMPLE_ID = "01a20961-d40d-706e-b083-2b35d13d6c4c"


def resolved(schema):
    """``schema`` with its local $refs replaced by what they point at."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            target = SPEC
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolved(target)
        return {key: resolved(value) for key, value in schema.items()}
    if isinstance(schema, list):
        return [resolved(item) for item in schema]
    return schema


def response_schema(path: str, method: str, status: int):
    response = resolved(SPEC["paths"][path][method]["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


def test_every_documented_route_exists_with_exactly_its_methods():
    for path, operations in SPEC["paths"].items():
        view = resolve(path.replace("{order_id}", SAMPLE_ID).replace("{name}", "emails")).func
        assert {method.upper() for method in operations} == set(view.allowed_methods), path


def routes(patterns, prefix: str = ""):
    """Every route the URL configuration serves, with its included prefixes."""
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)
        else:
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))


def test_every_api_route_is_documented():
    api_routes = {route for route in routes(get_resolver().url_patterns) if route.startswith("api/")}
    documented = {path.lstrip("/").replace("{order_id}", "<uuid:order_id>").replace("{name}", "<str:name>")
                  for path in SPEC["paths"]}

    assert api_routes == documented


@pytest.mark.django_db
def test_answers_fit_their_documented_schemas(api):  # noqa: F811
    accepted = post_json(api, {"kind": "bake", "payload": {"seconds": 1}, "priority": 3})
    order = api.get(accepted.json()["url"])
    page = api.get("/api/orders", {"limit": 5})
    refused = post_json(api, {"kind": "pineapple"})
    bulk = api.post("/api/orders/bulk", json.dumps({"orders": [{"kind": "noop"}]}), content_type="application/json")

    jsonschema.validate(accepted.json(), response_schema("/api/orders", "post", 202))
    jsonschema.validate(order.json(), response_schema("/api/orders/{order_id}", "get", 200))
    jsonschema.validate(page.json(), response_schema("/api/orders", "get", 200))
    jsonschema.validate(refused.json(), response_schema("/api/orders", "post", 400))
    jsonschema.validate(bulk.json(), response_schema("/api/orders/bulk", "post", 202))


@pytest.mark.django_db
def test_an_order_with_progress_fits_its_documented_schema(api):  # noqa: F811
    order = place_order("bake")
    [running] = claim("S0", 1)
    Order.objects.filter(pk=running.pk).update(progress_value=0.5, progress_note="720p done", progress_at=timezone.now())

    answer = api.get(f"/api/orders/{order.pk}").json()

    assert answer["progress"]["value"] == 0.5
    jsonschema.validate(answer, response_schema("/api/orders/{order_id}", "get", 200))
    jsonschema.validate(api.get("/api/orders").json(), response_schema("/api/orders", "get", 200))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**answer, "progress": {"value": 2}}, response_schema("/api/orders/{order_id}", "get", 200))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)


def from_schema(schema):
    """A strategy for values of ``schema``, for the JSON Schema the spec uses, stepping
    over its bounds now and then so both sides of every limit get tried."""
    kind = schema.get("type")
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=10)
    if kind == "object" and "properties" in schema:
        required = {name: from_schema(schema["properties"][name]) for name in schema.get("required", [])}
        optional = {name: from_schema(sub) for name, sub in schema["properties"].items() if name not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "object":
        return st.dictionaries(st.text(max_size=10), json_values, max_size=4)
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 50) + 5)
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        around = st.integers(None if low is None else low - 5, None if high is None else high + 5)
        return around if kind == "integer" else around | st.floats(allow_nan=False, allow_infinity=False)
    return json_values


ORDER_REQUEST = resolved(SPEC["components"]["schemas"]["OrderRequest"])
# Mostly orders the schema allows (some with a kind that exists, to reach the happy path),
# and some bodies it does not.
order_bodies = st.one_of(
    st.tuples(from_schema(ORDER_REQUEST), st.sampled_from(["noop", "bake", None])).map(
        lambda pair: {**pair[0], "kind": pair[1]} if pair[1] else pair[0]),
    json_values,
)
FUZZ = settings(max_examples=100, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.django_db
@FUZZ
@given(body=order_bodies)
def test_fuzzed_placements_never_5xx_and_write_all_or_nothing(api, body):  # noqa: F811
    before = Order.objects.count()

    response = post_json(api, body)

    assert response.status_code < 500
    assert Order.objects.count() == before + (1 if response.status_code == 202 else 0)


@pytest.mark.django_db
@settings(FUZZ, max_examples=50)
@given(bodies=st.lists(order_bodies, max_size=3), raw=st.binary(max_size=64), use_raw=st.booleans())
def test_fuzzed_bulk_placements_never_5xx_and_write_all_or_nothing(api, bodies, raw, use_raw):  # noqa: F811
    before = Order.objects.count()

    data = raw if use_raw else json.dumps({"orders": bodies})
    response = api.post("/api/orders/bulk", data, content_type="application/json")

    assert response.status_code < 500
    assert Order.objects.count() == before + (len(bodies) if response.status_code == 202 else 0)


def depth(value) -> int:
    """How deep arrays and objects nest in ``value``, counted as orders/specs counts a payload."""
    if isinstance(value, (dict, list)):
        return 1 + max(map(depth, value.values() if isinstance(value, dict) else value), default=0)
    return 0


# Object keys full of what a careless depth scan would take for structure.
tricky_keys = st.text(alphabet='[]{}"\\:, a', max_size=3)
wrappers = st.just(("[", "]")) | tricky_keys.map(lambda key: ("{" + json.dumps(key) + ": ", "}"))


@st.composite
def nested(draw):
    """(JSON text, its depth): a generated value inside N arrays and objects, N up to a few
    thousand. Built as text: json.dumps would itself recurse too deep."""
    value = draw(json_values)
    # Often just around the default limit of 32 once the levels around this value count.
    levels = draw(st.integers(22, 36) | st.integers(0, 3_000))
    # A short cycle of wrappers, repeated: drawing thousands of levels one by one is slow.
    cycle = draw(st.lists(wrappers, min_size=1, max_size=3))
    around = (cycle * levels)[:levels]
    opening, closing = "".join(pair[0] for pair in around), "".join(pair[1] for pair in reversed(around))
    return opening + json.dumps(value) + closing, levels + depth(value)


@st.composite
def deep_bodies(draw):
    """(url, body, depth of the body, levels of it above a payload): a nested value as a
    payload, as another field, or as the whole order, alone or in a bulk body."""
    text, levels = draw(nested())
    order, levels = draw(st.sampled_from([
        ('{"kind": "bake", "payload": {"deep": ' + text + "}}", levels + 2),
        ('{"kind": ' + text + "}", levels + 1),
        (text, levels),
    ]))
    if draw(st.booleans()):
        return "/api/orders", order, levels, 1
    return "/api/orders/bulk", '{"orders": [' + order + "]}", levels + 2, 3


@pytest.mark.django_db
@seed(20240611)
@settings(FUZZ, derandomize=False, database=None)
@given(case=deep_bodies())
def test_fuzzed_deep_bodies_are_refused_exactly_past_the_depth_limit(api, case):  # noqa: F811
    url, body, levels, envelope = case
    before = Order.objects.count()

    response = api.post(url, body, content_type="application/json")

    assert response.status_code < 500
    message = response.json().get("error", {}).get("message", "")
    assert ("nests deeper than" in message) == (levels > conf.get().max_payload_depth + envelope), message
    assert Order.objects.count() == before + (1 if response.status_code == 202 else 0)


@pytest.mark.django_db
@FUZZ
@given(params=st.dictionaries(st.sampled_from(["status", "kind", "limit", "cursor"]), st.text(max_size=40)),
       order_id=st.text(max_size=40))
def test_fuzzed_reads_never_5xx(api, params, order_id):  # noqa: F811
    place_order("noop")

    assert api.get("/api/orders", params).status_code < 500
    assert api.get(f"/api/orders/{order_id}").status_code < 500
