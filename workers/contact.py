"""Whether this process can reach the database, said once per outage.

Every thread of a worker (or the notifier) that talks to the database reports here. The
first failure logs that the database went away, the first success after it that it came
back, so an outage is two log lines however many calls failed in between. (Each thread
has a connection of its own, and each finds its old one broken on first use after the
database is back: those failures, soon after a return, are the same outage's tail.)"""

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

log = logging.getLogger("pizzaq.contact")

# Capped exponential backoff between retries while the database is away: quick enough to
# be back within a fraction of a second of its return, slow enough not to hammer it.
RETRY_FIRST, RETRY_CAP = 0.05, 1.0
# Failures this soon after the database came back are not told as a new outage.
SETTLE = 5.0


def limit_statement_time(using: str = "default") -> None:
    """Give this process's connections a statement timeout (``DATABASE_STATEMENT_TIMEOUT``),
    so a call on a connection whose server hangs, or waits on a lock for ever, ends in an
    error the loops retry. For workers and notifiers; not for one-off commands such as a
    migration, which may rightly run long. Not behind a transaction pooler either: it
    refuses startup options (set the timeout on the database role there)."""
    seconds = getattr(settings, "DATABASE_STATEMENT_TIMEOUT", 0)
    database = settings.DATABASES[using]
    if not seconds or "postgresql" not in database["ENGINE"] or getattr(settings, "DATABASE_TRANSACTION_POOLER", False):
        return
    database.setdefault("OPTIONS", {})["options"] = f"-c statement_timeout={round(seconds * 1000)}"
    connections[using].close()  # a connection opened before this would not have it


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed tries in a row."""
    return min(RETRY_CAP, RETRY_FIRST * 2 ** max(0, failures - 1))


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
