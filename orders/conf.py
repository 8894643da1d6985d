"""pizzaq's own settings: one typed place for every PIZZAQ_* knob and its default.

Each field can be set in the environment as PIZZAQ_<FIELD> (durations in seconds) or in
Django settings through the ``PIZZAQ`` dict. Code reads them through ``get()`` so that
``override_settings(PIZZAQ=...)`` works in tests.
"""

import dataclasses
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class PizzaqConf:
    # Orders hash by routing key into this many buckets; fixed for the life of a database.
    buckets: int = 1024
    # How often a worker proves it is alive.
    heartbeat_interval: float = 2.0
    # A worker silent for this long is declared dead by the notifier.
    worker_timeout: float = 10.0
    # A running order's lease; its worker renews it while the order runs, so it lapses
    # only when the worker is gone or the run is stuck (past its kind's timeout).
    visibility_timeout: float = 30.0
    # Attempts before an order is dead-lettered.
    max_attempts: int = 3
    # Exponential backoff between attempts: base * 2**(attempt-1), capped, with jitter.
    retry_base_delay: float = 1.0
    retry_max_delay: float = 300.0
    # Finished orders older than this are pruned.
    retention: float = 7 * 24 * 3600.0
    # Largest accepted payload, as encoded JSON.
    max_payload_bytes: int = 64 * 1024
    # How often an idle worker looks for work when no NOTIFY wakes it.
    poll_interval: float = 1.0
    # A running order's progress is written at most once per this many seconds, however
    # often its handler reports: a report is a write and a dashboard wake-up, and a bar
    # that moves once a second is live enough (orders/reporting.py).
    progress_interval: float = 1.0
    # Seconds a stopping worker waits for its running orders before releasing them.
    shutdown_grace: float = 30.0
    # Seconds a worker that was declared dead waits before it joins again as a new
    # incarnation (runworker --exit-when-fenced exits instead).
    rejoin_delay: float = 3.0
    # Modules whose import registers order handlers (orders.tasks_backend: Django tasks).
    handler_modules: tuple = ("orders.tasks_backend",)
    # Largest page the list API returns.
    max_page_size: int = 200
    # Orders one API token (or staff session) may place per rate_window seconds.
    rate_limit: int = 6000
    rate_window: float = 60.0
    # Most orders one bulk request may place.
    max_bulk: int = 1000
    # Deepest nesting accepted in a payload.
    max_payload_depth: int = 32
    # Queues whose orders with one routing key run one at a time, in the order they were
    # placed (as a kind registered with ordered=True does).
    ordered_queues: tuple = ()
    # The host name a worker registers with (default: the machine's own).
    hostname: str = ""


def _parse(field: dataclasses.Field, raw: str):
    if field.type in ("tuple", tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    kind = {"int": int, "float": float}.get(field.type, field.type)
    return kind(raw)


def overrides_from_environ(environ=os.environ) -> dict:
    """Read PIZZAQ_<FIELD> variables into a dict of typed overrides."""
    overrides = {}
    for field in dataclasses.fields(PizzaqConf):
        raw = environ.get(f"PIZZAQ_{field.name.upper()}")
        if raw not in (None, ""):
            overrides[field.name] = _parse(field, raw)
    return overrides


_built: tuple = (None, PizzaqConf())


def get() -> PizzaqConf:
    """The effective settings: defaults overlaid with ``settings.PIZZAQ``. Built again
    only when ``settings.PIZZAQ`` is replaced (as override_settings does); it is read on
    every order, so do not mutate that dict in place."""
    from django.conf import settings

    global _built
    overrides = getattr(settings, "PIZZAQ", {})
    if _built[0] is not overrides:
        _built = (overrides, PizzaqConf(**overrides))
    return _built[1]
