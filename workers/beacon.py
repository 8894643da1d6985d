"""Tell dashboards that this process changed something, at most once per period.

A NOTIFY per claim or completion would cost a round trip each and serialise commits on
the notification queue; one coalesced NOTIFY every quarter second keeps dashboards
within a second of the truth for nothing. It is sent after the changes committed, so a
dashboard that reads on it sees them. SQLite has no NOTIFY: dashboards poll there."""

import threading

from django.db import connections

from orders.notify import CHANGES_CHANNEL
from workers.contact import DatabaseContact

PERIOD = 0.25


class ChangeBeacon:
    """``mark()`` from anywhere; ``run()`` is the loop that sends, for a thread of its own."""

    def __init__(self, stop: threading.Event, contact: DatabaseContact, using: str = "default"):
        self.stop, self.contact, self.dirty = stop, contact, threading.Event()
        self.enabled = connections[using].vendor == "postgresql"
        self.params = connections[using].get_connection_params() if self.enabled else None

    def mark(self) -> None:
        """Something committed; dashboards should look again soon."""
        self.dirty.set()

    def run(self) -> None:
        # A dashboard misses nothing while it is down: it reads afresh on the next NOTIFY.
        self.contact.keep_session("telling dashboards", self.params, self._beat, self.stop)

    def _beat(self, conn) -> None:
        while not self.stop.wait(PERIOD):
            if self.dirty.is_set():
                self.dirty.clear()
                conn.execute("SELECT pg_notify(%s, '')", [CHANGES_CHANNEL])
