"""Tell dashboards that this process changed something, at most once per period.

A NOTIFY per claim or completion would cost a round trip each and serialise commits on
the notification queue; one coalesced NOTIFY every quarter second keeps dashboards
within a second of the truth for nothing. It is sent after the changes committed, so a
dashboard that reads on it sees them. SQLite has no NOTIFY: dashboards poll there."""

import logging
import threading

import psycopg
from django.db import connections

from orders.notify import CHANGES_CHANNEL

log = logging.getLogger("pizzaq.beacon")

PERIOD = 0.25


class ChangeBeacon(threading.Thread):
    def __init__(self, stop: threading.Event, using: str = "default"):
        super().__init__(name="change-beacon", daemon=True)
        self.stop, self.dirty = stop, threading.Event()
        self.enabled = connections[using].vendor == "postgresql"
        self.params = connections[using].get_connection_params() if self.enabled else None

    def mark(self) -> None:
        """Something committed; dashboards should look again soon."""
        self.dirty.set()

    def start(self):
        if self.enabled:
            super().start()

    def run(self):
        while not self.stop.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as conn:
                    self._beat(conn)
            except psycopg.Error as error:
                log.warning("change beacon lost its connection (%s); retrying", error)
                self.stop.wait(1.0)

    def _beat(self, conn):
        while not self.stop.wait(PERIOD):
            if self.dirty.is_set():
                self.dirty.clear()
                conn.execute("SELECT pg_notify(%s, '')", [CHANGES_CHANNEL])
