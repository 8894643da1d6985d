"""How an order is shown, one shape for every reader: the API's answers, the dashboard's
tables and its live stream. Values are JSON-ready except times, which each transport
encodes with Django's JSON encoder; links are added by whoever serves the order."""

from orders.models import Order, Schedule


def order_summary(order: Order) -> dict:
    """A line in a list: what it is, where it stands, and the last line of its error."""
    return {
        "id": str(order.id), "kind": order.kind, "queue": order.queue, "status": order.status, "priority": order.priority,
        "worker": order.worker or None, "attempt": order.attempt,
        "error_summary": order.last_error.strip().splitlines()[-1] if order.last_error.strip() else None,
        "created_at": order.created_at, "finished_at": order.finished_at, "progress": progress_of(order),
    }


def progress_of(order: Order) -> dict | None:
    """What the order's latest run reported of its progress (orders/reporting.py); None
    if it reported nothing (an earlier run's report is not this one's)."""
    if order.progress_at is None or (order.started_at is not None and order.progress_at < order.started_at):
        return None
    return {"value": order.progress_value, "note": order.progress_note, "at": order.progress_at}


def order_record(order: Order) -> dict:
    """Everything about one order: the summary with its payload, result, whole error and
    the history of its attempts."""
    return {
        **order_summary(order),
        "payload": order.payload, "routing_key": order.routing_key, "bucket": order.bucket,
        "pinned_to": order.pinned_to or None, "unique_key": order.unique_key or None,
        "concurrency_key": order.concurrency_key or None, "max_attempts": order.max_attempts, "result": order.result,
        "error": order.last_error or None, "history": order.history,
        "run_after": order.run_after, "expires_at": order.expires_at, "started_at": order.started_at,
    }


def schedule_summary(schedule: Schedule) -> dict:
    """A schedule: what it places, when, and when it last did."""
    return {
        "name": schedule.name, "when": schedule.describe(), "cron": schedule.cron or None,
        "every": schedule.every, "time_zone": schedule.time_zone, "kind": schedule.kind, "queue": schedule.queue,
        "priority": schedule.priority, "catch_up": schedule.catch_up, "enabled": schedule.enabled,
        "next_slot_at": schedule.next_slot_at if schedule.enabled else None, "last_slot_at": schedule.last_slot_at,
        "last_fired_at": schedule.last_fired_at,
        "last_order_id": str(schedule.last_order_id) if schedule.last_order_id else None,
    }
