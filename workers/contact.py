"""Whether this process can reach the database, said once per outage.

Every thread of a worker (or the notifier) that talks to the database reports here. The
first failure logs that the database went away, the first success after it that it came
back, so an outage is two log lines however many calls failed in between. (Each thread
has a connection of its own, and each finds its old one broken on first use after the
database is back: those failures, soon after a return, are the same outage's tail.)"""

import logging
import math
import threading
import time

import psycopg
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

log = logging.getLogger("pizzaq.contact")

# Capped exponential backoff between retries while the database is away: quick enough to
# be back within a fraction of a second of its return, slow enough not to hammer it.
RETRY_FIRST, RETRY_CAP = 0.05, 1.0
# Failures this soon after the database came back are not told as a new outage.
SETTLE = 5.0


# The client's guards that the server has too: libpq's name, the server's.
SERVER_SIDE_GUARDS = {
    "tcp_user_timeout": "tcp_user_timeout", "keepalives_idle": "tcp_keepalives_idle",
    "keepalives_interval": "tcp_keepalives_interval", "keepalives_count": "tcp_keepalives_count",
}


def limit_server_waits(using: str = "default") -> None:
    """Bound what the server waits for on this process's connections: no statement runs
    longer than ``DATABASE_STATEMENT_TIMEOUT`` (a lock waited on for ever ends in an error
    the loops retry), and the server probes the connection as the client does, so a worker
    that vanished mid-transaction (a partition) has its session ended and its locks freed
    within seconds, not at the operating system's two hours. For workers and notifiers;
    not for one-off commands such as a migration, which may rightly run long. Not behind a
    transaction pooler either: it refuses startup options (set them on the role there)."""
    database = settings.DATABASES[using]
    if "postgresql" not in database["ENGINE"] or getattr(settings, "DATABASE_TRANSACTION_POOLER", False):
        return
    options = database.setdefault("OPTIONS", {})
    guards = getattr(settings, "DATABASE_CONNECTION_GUARDS", {})
    server = {"statement_timeout": round(getattr(settings, "DATABASE_STATEMENT_TIMEOUT", 0) * 1000)}
    server.update({ours: guards[theirs] for theirs, ours in SERVER_SIDE_GUARDS.items() if theirs in guards})
    # Appended: what DATABASE_URL's own ?options= set stays.
    options["options"] = " ".join([options.get("options", ""), *(f"-c {k}={v}" for k, v in server.items())]).strip()
    connections[using].close()  # a connection opened before this would not have them


def retry_delay(failures: int, first: float = RETRY_FIRST, cap: float = RETRY_CAP) -> float:
    """Seconds to wait after ``failures`` failed tries in a row: ``first``, doubling, at most
    ``cap`` (the exponent is bounded too, so a long outage cannot overflow it)."""
    return min(cap, first * 2 ** min(max(0, failures - 1), 16))


class GaveUp(Exception):
    """The database did not come back before the caller stopped waiting for it."""


class DatabaseContact:
    def __init__(self, who: str):
        self.who = who
        self._lock = threading.Lock()
        self.lost_at: float | None = None  # monotonic; None while in contact
        self.told = False  # whether the outage going on was logged
        self.back_at = float("-inf")

    def failed(self, doing: str, error: BaseException) -> None:
        """A call failed: say so if it is the first since the database was last reached
        (or this outage has gone on past the settling time unsaid), and drop this thread's
        connection if it is broken, so the next call reconnects."""
        with self._lock:
            now = time.monotonic()
            if self.lost_at is None:
                self.lost_at = now
            tell = not self.told and (now - self.back_at > SETTLE or now - self.lost_at > SETTLE)
            self.told = self.told or tell
        if tell:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log.warning("%s lost the database (%s: %s); retrying until it is back", self.who, doing, reason)
        close_old_connections()

    def reached(self) -> None:
        """A call succeeded: say so if the database was away and that was said."""
        with self._lock:
            lost_at, told = self.lost_at, self.told
            if lost_at is not None:
                self.lost_at, self.told, self.back_at = None, False, time.monotonic()
        if lost_at is not None and told:
            log.warning("%s reached the database again after %.1f s", self.who, time.monotonic() - lost_at)

    def keep_session(self, doing: str, params: dict, use, stop: threading.Event, on_lost=lambda: None) -> None:
        """``use(conn)`` on a connection of its own (autocommit, outside Django's), opened
        again with backoff whenever the database drops it, until ``stop``; ``on_lost()``
        hears of each loss."""
        failures = 0
        while not stop.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    self.reached()
                    failures = 0
                    use(conn)
            except psycopg.Error as error:
                # Retry point: the session comes back with the database.
                self.failed(doing, error)
                on_lost()
                failures += 1
                stop.wait(retry_delay(failures))

    def until_done(self, doing: str, call, stop: threading.Event, give_up_at=lambda: math.inf):
        """``call()``'s value once the database takes it, retried with backoff while it is
        away; GaveUp if ``stop`` is set, or the time ``give_up_at()`` passes, first."""
        failures = 0
        while True:
            try:
                value = call()
            except DatabaseError as error:
                # Retry point: an outage, not a failure of the work being written.
                self.failed(doing, error)
                failures += 1
                if stop.wait(retry_delay(failures)) or time.monotonic() > give_up_at():
                    raise GaveUp(f"the database was still away when {self.who} gave up {doing}") from error
                continue
            self.reached()
            return value
