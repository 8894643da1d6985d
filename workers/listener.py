"""PostgreSQL LISTEN as a loop that sets an Event, so a sleeping loop wakes at once.

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
    """Sets ``wake`` whenever ``channel`` is notified, until ``stop``; reconnects after
    errors (and sets ``wake`` then too: a notification may have been missed)."""

    def __init__(self, channel: str, wake: threading.Event, stop: threading.Event, params: dict,
                 contact: DatabaseContact):
        self.channel, self.wake, self.stop, self.params, self.contact = channel, wake, stop, params, contact

    def run(self) -> None:
        # While LISTEN is down, the claim loop polls; woken at each loss, it looks at once.
        self.contact.keep_session(f"LISTEN {self.channel}", self.params, self._listen, self.stop,
                                  on_lost=self.wake.set)

    def _listen(self, conn) -> None:
        conn.execute(f"LISTEN {self.channel}")
        self.wake.set()  # a notification may have come while we were away
        while not self.stop.is_set():
            for _ in conn.notifies(timeout=0.5):
                self.wake.set()
