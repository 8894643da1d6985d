"""Tell dashboards that this process changed something, at most once per period.

A NOTIFY per claim or completion would cost a round trip each and serialise commits on
the notification queue; one coalesced NOTIFY every quarter second keeps dashboards
within a second of the truth for nothing. It is sent after the changes committed, so a
dashboard that reads on it sees them. SQLite has no NOTIFY: dashboards poll there."""

import threading

import psycopg
from django.db import connections

from orders.notify import CHANGES_CHANNEL
from workers.contact import DatabaseContact, retry_delay

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
        failures = 0
        while not self.stop.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as conn:
                    self.contact.reached()
                    failures = 0
                    self._beat(conn)
            except psycopg.Error as error:
                # Retry point: a dashboard misses nothing it cannot read again later.
                self.contact.failed("telling dashboards", error)
                failures += 1
                self.stop.wait(retry_delay(failures))

    def _beat(self, conn) -> None:
        while not self.stop.wait(PERIOD):
            if self.dirty.is_set():
                self.dirty.clear()
                conn.execute("SELECT pg_notify(%s, '')", [CHANGES_CHANNEL])
