"""Side loops that are watched: one that dies of anything is logged and started again.

A worker is its claim loop plus side loops (heartbeat, recorder, listener, beacon, order
threads). Were one of them to end unseen, the worker would go on with a part missing:
claiming orders whose results nobody writes, or running with no heartbeat until it is
declared dead. So each runs under ``keep_running``, which restarts it after a short
backoff until the worker asks it to stop."""

import logging
import threading
import time

from django.db import connections

from workers.contact import retry_delay

log = logging.getLogger("pizzaq.worker")

RESTART_FIRST, RESTART_CAP = 0.1, 5.0
# A loop that dies this often in a row, each time within HEALTHY seconds of its restart, is
# broken for good: restarting it again would only hide that.
MAX_DEATHS, HEALTHY = 5, 60.0


def keep_running(label: str, loop, stop: threading.Event, on_broken=None) -> threading.Thread:
    """Run ``loop()`` on a daemon thread; whenever it raises, log it and run it again,
    until ``stop`` is set. A loop returns only when it is done for good. One that keeps
    dying is given up, and ``on_broken(label)`` hears of it."""

    def supervise():
        try:
            restart_until_done()
        finally:
            connections.close_all()  # this thread's own connections; nobody else would close them

    def restart_until_done():
        deaths = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                loop()
                return
            except BaseException:  # noqa: B036 - any death, SystemExit too, must not go unseen
                deaths = 1 if time.monotonic() - started > HEALTHY else deaths + 1
                if deaths >= MAX_DEATHS and on_broken is not None:
                    log.critical("%s died %d times in a row; giving up on it", label, deaths, exc_info=True)
                    on_broken(label)
                    return
                log.exception("%s died; restarting it (death %d in a row)", label, deaths)
                stop.wait(retry_delay(deaths, RESTART_FIRST, RESTART_CAP))

    thread = threading.Thread(target=supervise, name=label, daemon=True)
    thread.start()
    return thread
