"""Whether this process can reach the database, said once per outage.

Every thread of a worker (or the notifier) that talks to the database reports here. The
first failure logs that the database went away, the first success after it that it came
back, so an outage is two log lines however many calls failed in between."""

import logging
import threading
import time

from django.db import close_old_connections

log = logging.getLogger("pizzaq.contact")

# Capped exponential backoff between retries while the database is away: quick enough to
# be back within a fraction of a second of its return, slow enough not to hammer it.
RETRY_FIRST, RETRY_CAP = 0.05, 1.0


def retry_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed tries in a row."""
    return min(RETRY_CAP, RETRY_FIRST * 2 ** max(0, failures - 1))


class DatabaseContact:
    def __init__(self, who: str):
        self.who = who
        self._lock = threading.Lock()
        self.lost_at: float | None = None  # monotonic; None while in contact

    @property
    def lost(self) -> bool:
        return self.lost_at is not None

    def failed(self, doing: str, error: BaseException) -> None:
        """A call failed: say so if it is the first since the database was last reached,
        and drop this thread's connection if it is broken, so the next call reconnects."""
        with self._lock:
            first = self.lost_at is None
            if first:
                self.lost_at = time.monotonic()
        if first:
            log.warning("%s lost the database (%s: %s); retrying until it is back", self.who, doing,
                        str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        close_old_connections()

    def reached(self) -> None:
        """A call succeeded: say so if the database was away."""
        with self._lock:
            lost_at, self.lost_at = self.lost_at, None
        if lost_at is not None:
            log.warning("%s reached the database again after %.1f s", self.who, time.monotonic() - lost_at)
