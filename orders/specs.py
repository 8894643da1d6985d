"""What a client may ask for: an OrderSpec, checked before anything is written."""

import json
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from orders import conf
from orders.handlers import is_public, is_registered
from orders.ids import uuid7
from orders.models import DEFAULT_QUEUE, AfterPolicy, MAX_PRIORITY, MIN_PRIORITY, QUEUE_NAME_PATTERN, Order, Status, UniqueScope
from orders.routing import bucket_for

MAX_ATTEMPTS_LIMIT = 100
MAX_SECONDS = 10 * 365 * 24 * 3600  # delays and TTLs beyond ten years are surely mistakes
MAX_ROUTING_KEY = 200
QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)


class OrderRejected(ValueError):
    """A client asked for an order that cannot be accepted; nothing was written."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message, self.field, self.code = message, field, code
        # Which order of a bulk placement was refused.
        self.index: int | None = None


@dataclass
class OrderSpec:
    kind: str
    payload: dict | None = None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    routing_key: str | None = None
    delay: float | timedelta | None = None
    ttl: float | timedelta | None = None
    max_attempts: int | None = None
    pinned_to: str = ""
    run_after: datetime | None = None
    # At most one order with this key in its scope; placing another gives that one back.
    unique_key: str | None = None
    unique_scope: str = UniqueScope.ACTIVE
    # Scope "period": the key is held this many seconds after placement.
    unique_period: float | timedelta | None = None
    # Orders with one key share the per-key concurrency limit of their kind or queue.
    concurrency_key: str = ""
    # Orders (Orders, ids, or specs placed in the same call) this one waits for; and what
    # happens when one of them ends dead, expired or cancelled (AfterPolicy).
    after: Sequence = ()
    after_policy: str = AfterPolicy.CANCEL


def check_client_kind(kind) -> None:
    """Clients (the API, the dashboard) may place only public kinds: an internal kind such
    as a Django task names code to import, which only trusted Python may choose."""
    if isinstance(kind, str) and is_registered(kind) and not is_public(kind):
        raise OrderRejected(f"unknown kind {kind!r}", field="kind", code="unknown_kind")


def check_queue_name(name) -> str:
    """A queue's name: letters, digits and ``._-``, as in a command line's --queues."""
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise OrderRejected(f"queue must be 1 to 100 letters, digits, '.', '_' or '-', got {name!r:.80}",
                            field="queue", code="invalid_queue")
    return name


def _check_unique(spec: OrderSpec) -> str:
    """The spec's unique key ("" for none), checked with its scope and period."""
    if spec.unique_key is None:
        if spec.unique_period is not None:
            raise OrderRejected("unique_period needs a unique_key", field="unique_period")
        return ""
    key = _check_short_text(spec.unique_key, "unique_key", MAX_ROUTING_KEY)
    if not key:
        raise OrderRejected("unique_key must not be empty", field="unique_key")
    if spec.unique_scope not in UniqueScope.values:
        raise OrderRejected(f"unique_scope must be one of {', '.join(UniqueScope.values)}", field="unique_scope")
    period = unique_period_seconds(spec)
    if (spec.unique_scope == UniqueScope.PERIOD) != (period is not None and period > 0):
        raise OrderRejected('unique_period (seconds, more than 0) goes with unique_scope "period", and only with it',
                            field="unique_period")
    return key


def after_policy(spec: OrderSpec) -> str:
    """The spec's ``after_policy``, checked."""
    if spec.after_policy not in AfterPolicy.values:
        raise OrderRejected(f"after_policy must be one of {', '.join(AfterPolicy.values)}", field="after_policy")
    return spec.after_policy


def unique_period_seconds(spec: OrderSpec) -> float | None:
    """The spec's ``unique_period`` in seconds (None: none given)."""
    return _seconds(spec.unique_period, "unique_period")


def _seconds(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_SECONDS:
        raise OrderRejected(f"{name} must be a number of seconds from 0 to {MAX_SECONDS}", field=name)
    return float(value)


def _check_kind(kind) -> None:
    if not isinstance(kind, str) or not kind or "\x00" in kind:
        raise OrderRejected("kind must be a non-empty string", field="kind")
    if not is_registered(kind):
        raise OrderRejected(f"unknown kind {kind!r}", field="kind", code="unknown_kind")


def _shape(value) -> tuple[int, bool]:
    """(nesting depth, holds a NUL character), found without recursion: a hostile
    payload may nest deeply."""
    deepest, has_nul, todo = 0, False, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        deepest = max(deepest, depth)
        children = list(item.items()) if isinstance(item, dict) else item
        for child in children:
            for part in child if isinstance(item, dict) else (child,):
                if isinstance(part, str):
                    has_nul = has_nul or "\x00" in part
                elif isinstance(part, (dict, list)):
                    todo.append((part, depth + 1))
    return deepest, has_nul


def _check_payload(payload, settings: conf.PizzaqConf) -> dict:
    payload = {} if payload is None else payload
    if not isinstance(payload, dict):
        raise OrderRejected("payload must be a JSON object", field="payload")
    depth, has_nul = _shape(payload)
    if depth > settings.max_payload_depth:
        raise OrderRejected(f"payload nests deeper than {settings.max_payload_depth} levels", field="payload")
    # PostgreSQL's jsonb and text cannot hold NUL; refuse it on every database alike.
    if has_nul:
        raise OrderRejected("payload may not contain NUL characters", field="payload")
    try:
        encoded = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise OrderRejected(f"payload is not JSON-serialisable: {error}", field="payload") from None
    size = len(encoded)  # json.dumps escapes everything that is not ASCII: one byte a character
    if size > settings.max_payload_bytes:
        raise OrderRejected(f"payload is {size} bytes; the limit is {settings.max_payload_bytes}",
                            field="payload", code="payload_too_large")
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


def _check_max_attempts(max_attempts, settings: conf.PizzaqConf) -> int:
    if max_attempts is None:
        return settings.max_attempts
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise OrderRejected("max_attempts must be an integer", field="max_attempts")
    if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
        raise OrderRejected(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT}", field="max_attempts")
    return max_attempts


def _check_short_text(value, name: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise OrderRejected(f"{name} must be a string of at most {limit} characters, without NUL", field=name)
    return value


# A new order's values, named, put in Order's field order: the order of its positional
# constructor (``Model.from_db``), of the INSERT's and of COPY's columns.
_ATTNAMES = tuple(field.attname for field in Order._meta.concrete_fields)
_in_field_order = operator.itemgetter(*_ATTNAMES)
_POSITION = {name: position for position, name in enumerate(_ATTNAMES)}


def row_with(row: tuple, **changes) -> tuple:
    """A row OrderBuilder made, with some of its values changed by field name."""
    values = list(row)
    for name, value in changes.items():
        values[_POSITION[name]] = value
    return tuple(values)


class OrderBuilder:
    """Turns specs into unsaved Orders placed at ``now``, or OrderRejected saying what is
    wrong. Settings are read once per batch, not once per order."""

    def __init__(self, now: datetime):
        self.now = now
        self.settings = conf.get()

    def row(self, spec: OrderSpec) -> tuple:
        """The new order's column values, in Order's field order."""
        now, settings = self.now, self.settings
        _check_kind(spec.kind)
        delay, ttl = _seconds(spec.delay, "delay"), _seconds(spec.ttl, "ttl")
        run_after = spec.run_after or (now if not delay else now + timedelta(seconds=delay))
        expires_at = None if ttl is None else now + timedelta(seconds=ttl)
        if expires_at is not None and expires_at <= run_after:
            raise OrderRejected("ttl must end after the order becomes due (ttl > delay)", field="ttl")
        order_id = uuid7()
        routing_key = str(order_id) if spec.routing_key is None else spec.routing_key
        _check_short_text(routing_key, "routing_key", MAX_ROUTING_KEY)
        return _in_field_order({
            "id": order_id, "kind": spec.kind, "queue": check_queue_name(spec.queue), "payload": _check_payload(spec.payload, settings),
            "priority": _check_priority(spec.priority), "status": Status.QUEUED, "routing_key": routing_key,
            "bucket": bucket_for(routing_key, settings.buckets),
            "pinned_to": _check_short_text(spec.pinned_to or "", "pinned_to", 100), "worker": "", "attempt": 0,
            "max_attempts": _check_max_attempts(spec.max_attempts, settings), "uncounted_attempts": 0,
            "run_after": run_after, "expires_at": expires_at, "lease_expires_at": None, "result": None,
            "last_error": "", "history": [], "created_at": now, "started_at": None, "finished_at": None,
            "unique_key": _check_unique(spec),
            "concurrency_key": _check_short_text(spec.concurrency_key or "", "concurrency_key", MAX_ROUTING_KEY),
            "waiting_for": 0, "has_dependents": False, "progress_value": None, "progress_note": "", "progress_at": None,
        })
