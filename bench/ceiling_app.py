"""The ceiling for HTTP placing: a minimal ASGI endpoint that places the same row as
pizzaq's API (every column, the same INSERT with its NOTIFY, one autocommit statement)
on a pooled async connection, with nothing else: no framework, no authentication, no
checks beyond the JSON. Served as pizzaq is (``manage.py serve``'s server and process
count), it says how much of a request's cost is pizzaq's own.

    uvicorn bench.ceiling_app:app --workers N   (DATABASE_URL set)
"""

import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzaq.settings")
django.setup()

from django.utils import timezone  # noqa: E402  (needs Django set up first)
from psycopg_pool import AsyncConnectionPool  # noqa: E402

from orders import conf  # noqa: E402
from orders.ids import uuid7  # noqa: E402
from orders.models import Order  # noqa: E402
from orders.notify import ORDERS_CHANNEL  # noqa: E402
from orders.placing import _insert_sql, _json_columns  # noqa: E402
from orders.routing import bucket_for  # noqa: E402
from orders.specs import OrderBuilder, OrderSpec  # noqa: E402

# The INSERT statement and a row of pizzaq's own making: each request changes only its
# id, kind, payload, priority, routing and times.
SQL = _insert_sql(1)
TEMPLATE = list(OrderBuilder(timezone.now()).row(OrderSpec("noop", {})))
JSON_COLUMNS = _json_columns()
FIELDS = [field.name for field in Order._meta.concrete_fields]
ID, KIND, PAYLOAD, PRIORITY = (FIELDS.index(name) for name in ("id", "kind", "payload", "priority"))
ROUTING, BUCKET, RUN_AFTER, CREATED = (FIELDS.index(name) for name in ("routing_key", "bucket", "run_after",
                                                                         "created_at"))
BUCKETS = conf.get().buckets
_pool: AsyncConnectionPool | None = None


async def _connection_pool() -> AsyncConnectionPool:
    global _pool
    if _pool is None:
        _pool = AsyncConnectionPool(os.environ["DATABASE_URL"], min_size=2, max_size=20,
                                    kwargs={"autocommit": True, "prepare_threshold": 0}, open=False)
        await _pool.open()
    return _pool


def _row(body: dict) -> list:
    row, now, order_id = TEMPLATE.copy(), timezone.now(), uuid7()
    row[ID], row[KIND], row[PAYLOAD], row[PRIORITY] = order_id, body["kind"], body.get("payload", {}), \
        body.get("priority", 0)
    row[ROUTING], row[RUN_AFTER], row[CREATED] = str(order_id), now, now
    row[BUCKET] = bucket_for(row[ROUTING], BUCKETS)
    return [json.dumps(value) if i in JSON_COLUMNS and value is not None else value for i, value in enumerate(row)]


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send, status: int, payload: dict) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    try:
        row = _row(json.loads(await _body(receive)))
    except (ValueError, KeyError, TypeError) as error:
        return await _respond(send, 400, {"error": str(error)})
    pool = await _connection_pool()
    async with pool.connection() as connection:
        await connection.execute(SQL, [*row, ORDERS_CHANNEL])
    await _respond(send, 202, {"id": str(row[ID])})

