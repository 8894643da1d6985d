"""Wake listeners after commit: one NOTIFY per transaction, never one per row.

On SQLite there is no NOTIFY; listeners poll instead.
"""

from django.db import DEFAULT_DB_ALIAS, connections, transaction

# Workers LISTEN here for new or newly due orders.
ORDERS_CHANNEL = "pizzaq_orders"
# Dashboards LISTEN here (and on ORDERS_CHANNEL) for anything else that changed.
CHANGES_CHANNEL = "pizzaq_changes"
# Workers LISTEN here for running orders cancelled; the payload is the order's id.
CANCEL_CHANNEL = "pizzaq_cancel"


def notify_now(channel: str, using: str = DEFAULT_DB_ALIAS, payload: str = "") -> None:
    """NOTIFY inside the current transaction: PostgreSQL delivers it when (and only if) the
    transaction commits, identical ones once."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def _sender(channel: str, using: str, payload: str):
    def send():
        notify_now(channel, using, payload)

    send.pizzaq_notification = (channel, payload)
    return send


def notify_after_commit(channel: str = ORDERS_CHANNEL, using: str = DEFAULT_DB_ALIAS, payload: str = "") -> None:
    """Send ``channel`` a NOTIFY once the current transaction commits (at most once)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    # Several writes in one transaction share one wake-up: skip if one is already queued.
    pending = (getattr(func, "pizzaq_notification", None) for _, func, _ in connection.run_on_commit)
    if (channel, payload) in pending:
        return
    transaction.on_commit(_sender(channel, using, payload), using=using)
