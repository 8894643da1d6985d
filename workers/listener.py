"""PostgreSQL LISTEN as a thread that sets an Event, so a sleeping loop wakes at once."""

import logging
import threading

import psycopg
from django.db import connections

log = logging.getLogger("pizzaq.listener")


class Listener(threading.Thread):
    """Sets ``wake`` whenever ``channel`` is notified; reconnects after errors."""

    def __init__(self, channel: str, wake: threading.Event, stop: threading.Event, using: str = "default"):
        super().__init__(name=f"listen-{channel}", daemon=True)
        self.channel, self.wake, self.stop = channel, wake, stop
        self.params = connections[using].get_connection_params()

    def run(self):
        while not self.stop.is_set():
            try:
                self._listen()
            except psycopg.Error as error:
                log.warning("LISTEN %s lost its connection (%s); polling until it is back", self.channel, error)
                self.wake.set()
                self.stop.wait(1.0)

    def _listen(self):
        with psycopg.connect(**self.params, autocommit=True) as conn:
            conn.execute(f"LISTEN {self.channel}")
            while not self.stop.is_set():
                for _ in conn.notifies(timeout=0.5):
                    self.wake.set()
