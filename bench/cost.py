"""What a drain costs in CPU: the seconds the worker processes (and their children) and
the database's server processes spend, read from /proc (Linux).

A drain is sampled twice, once some orders have finished and once all have, with every
process still alive; the difference over the orders finished in between is the cost
per order at work, without the workers' start-up (imports, connecting) and without the
connections of the bench itself."""

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from bench import harness

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None  # gone
    # The command name (field 2) may hold spaces; the fields after it are plain.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pids) -> float:
    """User and system CPU of ``pids`` so far, each with its reaped children."""
    total = 0
    for pid in pids:
        if (fields := _stat(pid)) is not None:
            # utime, stime, cutime, cstime: fields 14-17 of /proc/PID/stat.
            total += sum(int(value) for value in fields[11:15])
    return total / _TICKS


def descendants(root: int) -> list[int]:
    """``root`` and every process below it (a Celery worker is a parent and its children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def database_pids(db: str) -> list[int]:
    """The PostgreSQL server processes serving connections to ``db``, but the bench's own
    (this query's, and the ones that count finished orders, which connect afresh)."""
    name = urlparse(db).path.lstrip("/")
    return [row[0] for row in harness.query(
        db, "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (name,))]


def redis_pids() -> list[int]:
    """The Redis server, which is a Celery queue's broker and result store."""
    import redis

    return [int(redis.Redis.from_url(harness.REDIS_URL).info("server")["process_id"])]


@dataclass
class Sample:
    done: int
    workers: float
    store: float


class Meter:
    """Samples the CPU of ``workers`` (Popen objects) and of the queue's store: its
    database's server processes, or Redis for Celery."""

    def __init__(self, queue, db: str, workers: list):
        self.queue, self.db, self.workers = queue, db, workers
        self.first: Sample | None = None

    def sample(self, done: int) -> Sample:
        worker_pids = [pid for worker in self.workers for pid in descendants(worker.pid)]
        store_pids = redis_pids() if self.queue.name == "celery" else database_pids(self.db)
        return Sample(done, cpu_seconds(worker_pids), cpu_seconds(store_pids))

    def note(self, done: int) -> None:
        """Take the first sample once some orders are done (and not all of them)."""
        if self.first is None and done > 0:
            self.first = self.sample(done)

    def per_10k(self, done: int) -> dict:
        """CPU seconds per 10,000 orders between the first sample and now; nothing if the
        drain was over before a first sample (a short drain: drain more orders)."""
        last = self.sample(done)
        if self.first is None or last.done <= self.first.done:
            return {}
        orders = last.done - self.first.done
        return {"worker_cpu": (last.workers - self.first.workers) / orders * 10_000,
                "store_cpu": (last.store - self.first.store) / orders * 10_000}
