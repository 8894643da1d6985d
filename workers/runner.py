"""A worker process: one incarnation after another, until it is told to stop.

An incarnation that learns it was declared dead (silence, a partition, a force-fail)
discards its results and ends; the process then waits a short back-off and joins again
as a new incarnation, taking its share of the buckets back. So a shop that was frozen,
cut off or force-failed reopens by itself, and a supervisor that stops everything when
one process exits (honcho, in ``make run``) never sees it go. ``exit_when_fenced``
keeps the older habit, for supervisors that restart processes themselves."""

import logging
import os
import signal
import threading

from orders import conf
from workers.incarnation import DEFAULT_PREFETCH_PER_THREAD, Ending, Incarnation
from workers.membership import NameTaken

log = logging.getLogger("pizzaq.worker")

EXIT_FENCED = 3


class Runner:
    def __init__(self, name: str, concurrency: int = 4, grace: float | None = None, prefetch: int | None = None,
                 *, exit_when_fenced: bool = False, rejoin_delay: float | None = None, queues=()):
        settings = conf.get()
        self.name, self.concurrency = name, concurrency
        self.queues = tuple(sorted(set(queues)))  # empty: every queue
        self.capacity = concurrency + (DEFAULT_PREFETCH_PER_THREAD * concurrency if prefetch is None else prefetch)
        self.grace = settings.shutdown_grace if grace is None else grace
        self.exit_when_fenced = exit_when_fenced
        self.rejoin_delay = settings.rejoin_delay if rejoin_delay is None else rejoin_delay
        self.stopping = threading.Event()
        self.current: Incarnation | None = None
        # Runs left behind still running (fenced off or past the grace period): the
        # process should not wait for them to exit.
        self.abandoned = False
        self.signals_seen = 0

    def run(self) -> int:
        """Work until stopped; returns the process exit code."""
        while not self.stopping.is_set():
            self.current = Incarnation(self.name, self.concurrency, self.capacity, self.grace, self.queues)
            if self.stopping.is_set():
                break  # a signal came while the incarnation was being made
            ending = self._run_incarnation()
            self.abandoned = self.abandoned or bool(self.current.running)
            if ending is Ending.STOPPED:
                break
            if ending is Ending.FENCED and self.exit_when_fenced:
                log.error("%s exits (--exit-when-fenced): start it again to rejoin as a new incarnation", self.name)
                return EXIT_FENCED
            log.warning("%s rejoins in %.1f s as a new incarnation (%s)", self.name, self.rejoin_delay, ending.value)
            self.stopping.wait(self.rejoin_delay)
        return 0

    def _run_incarnation(self) -> Ending:
        try:
            return self.current.run()
        except NameTaken:
            raise  # another process has this name: joining again would not change that
        except Exception:
            # The incarnation shut down in its finally; start afresh rather than die.
            log.exception("%s: its incarnation failed", self.name)
            return Ending.BROKEN

    def request_stop(self, reason: str) -> None:
        self.stopping.set()
        if self.current is not None:
            self.current.request_stop(reason)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame):
        self.signals_seen += 1
        if self.signals_seen > 1:
            # A second signal means now: the notifier will recover what was running.
            log.warning("%s: second signal, exiting at once", self.name)
            logging.shutdown()
            os._exit(1)
        self.request_stop(signal.Signals(signum).name)
