"""What a client may ask for: an OrderSpec, checked before anything is written."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from pizzaq import conf
from orders.handlers import is_registered
from orders.ids import uuid7
from orders.models import MAX_PRIORITY, MIN_PRIORITY, Order, Status
from orders.routing import bucket_for

MAX_ATTEMPTS_LIMIT = 100
MAX_ROUTING_KEY = 200


class OrderRejected(ValueError):
    """A client asked for an order that cannot be accepted; nothing was written."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message, self.field, self.code = message, field, code


@dataclass
class OrderSpec:
    kind: str
    payload: dict | None = None
    priority: int = 0
    routing_key: str | None = None
    delay: float | timedelta | None = None
    ttl: float | timedelta | None = None
    max_attempts: int | None = None
    pinned_to: str = ""
    run_after: datetime | None = None


def _seconds(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise OrderRejected(f"{name} must be a number of seconds, 0 or more", field=name)
    return float(value)


def _check_kind(kind) -> None:
    if not isinstance(kind, str) or not kind:
        raise OrderRejected("kind must be a non-empty string", field="kind")
    if not is_registered(kind):
        raise OrderRejected(f"unknown kind {kind!r}", field="kind", code="unknown_kind")


def _check_payload(payload) -> dict:
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise OrderRejected("payload must be a JSON object", field="payload")
    try:
        size = len(json.dumps(payload, allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise OrderRejected(f"payload is not JSON-serialisable: {error}", field="payload") from None
    limit = conf.get().max_payload_bytes
    if size > limit:
        raise OrderRejected(
            f"payload is {size} bytes; the limit is {limit}", field="payload", code="payload_too_large"
        )
    return payload


def _check_priority(priority) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise OrderRejected("priority must be an integer", field="priority")
    if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise OrderRejected(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}",
            field="priority",
        )
    return priority


def _check_max_attempts(max_attempts) -> int:
    if max_attempts is None:
        return conf.get().max_attempts
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise OrderRejected("max_attempts must be an integer", field="max_attempts")
    if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise OrderRejected(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}", field="max_attempts")
    return max_attempts


def _check_short_text(value, name: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise OrderRejected(f"{name} must be a string of at most {limit} characters", field=name)
    return value


def build_order(spec: OrderSpec, now: datetime) -> Order:
    """An unsaved Order for ``spec``, or OrderRejected saying what is wrong."""
    _check_kind(spec.kind)
    delay, ttl = _seconds(spec.delay, "delay"), _seconds(spec.ttl, "ttl")
    run_after = spec.run_after or now + timedelta(seconds=delay or 0)
    if ttl is not None and now + timedelta(seconds=ttl) <= run_after:
        raise OrderRejected("ttl must end after the order becomes due (ttl > delay)", field="ttl")
    order_id = uuid7()
    routing_key = str(order_id) if spec.routing_key is None else spec.routing_key
    _check_short_text(routing_key, "routing_key", MAX_ROUTING_KEY)
    return Order(
        id=order_id,
        kind=spec.kind,
        payload=_check_payload(spec.payload),
        priority=_check_priority(spec.priority),
        status=Status.QUEUED,
        routing_key=routing_key,
        bucket=bucket_for(routing_key, conf.get().buckets),
        pinned_to=_check_short_text(spec.pinned_to or "", "pinned_to", 100),
        max_attempts=_check_max_attempts(spec.max_attempts),
        run_after=run_after,
        expires_at=None if ttl is None else now + timedelta(seconds=ttl),
        created_at=now,
    )
