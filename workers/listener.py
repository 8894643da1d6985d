"""PostgreSQL LISTEN as a loop that calls back, so a sleeping loop wakes at once.

LISTEN needs a session of its own, which a transaction pooler (PgBouncer in transaction
mode) cannot give: there it connects to ``DATABASE_LISTEN_URL``, the server itself, or
not at all, and workers poll (``listen_params``)."""

import threading

from django.conf import settings
from django.db import connections

from workers.contact import DatabaseContact


def listen_params(using: str = "default") -> dict | None:
    """How to connect for LISTEN; None when it cannot be done (behind a transaction
    pooler with no direct URL given): then waiting work is found by polling."""
    if url := getattr(settings, "DATABASE_LISTEN_URL", ""):
        return {"conninfo": url, **getattr(settings, "DATABASE_CONNECTION_GUARDS", {})}
    if getattr(settings, "DATABASE_TRANSACTION_POOLER", False):
        return None
    return connections[using].get_connection_params()


class Listener:
    """Calls ``on_notify[channel](payload)`` for each notification on its channels, until
    ``stop``; reconnects after errors, and calls ``on_lost()`` then and on every (re)connect:
    a notification may have been missed."""

    def __init__(self, on_notify: dict, on_lost, stop: threading.Event, params: dict, contact: DatabaseContact):
        self.on_notify, self.on_lost, self.stop, self.params, self.contact = on_notify, on_lost, stop, params, contact

    def run(self) -> None:
        # While LISTEN is down, the claim loop polls; woken at each loss, it looks at once.
        self.contact.keep_session(f"LISTEN {', '.join(self.on_notify)}", self.params, self._listen, self.stop,
                                  on_lost=self.on_lost)

    def _listen(self, conn) -> None:
        for channel in self.on_notify:
            conn.execute(f"LISTEN {channel}")
        self.on_lost()  # a notification may have come while we were away
        while not self.stop.is_set():
            for notification in conn.notifies(timeout=0.5):
                self.on_notify[notification.channel](notification.payload)
