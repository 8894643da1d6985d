"""Celery's side, on Redis with acks late: the app and its tasks
(``celery -A bench.drivers.celery_driver worker``) and the client.

    python -m bench.drivers celery enqueue|bulk|fill|paced|long --n N

Celery keeps no record of a run once the message is acked, so each task notes its own
run in Redis (one pipelined round trip): how often each job ran, the first start and
last finish, and, for paced jobs, the place → start delay. The suite checks these."""

import os
import time
from functools import cache

import redis
from celery import Celery, group
from celery.signals import worker_ready

from bench.drivers.common import calls_of, emit, paced, timed

REDIS_URL = os.environ["BENCH_REDIS_URL"]
QUEUE = "pizzaq_bench"
RUNS, LATENCY, FIRST, LAST = "bench:runs", "bench:latency", "bench:first", "bench:last"

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    # Acknowledge after the task ran, so a crashed worker's job is delivered again.
    task_acks_late=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
if os.environ.get("BENCH_RECOVERY") == "1":
    # S5 only. On Redis an unacked message returns to the queue when its visibility
    # timeout (default one hour) passes; 10 s matches pizzaq's worker timeout, and the
    # sweep for such messages runs every second instead of every 100 s.
    app.conf.broker_transport_options = {
        "visibility_timeout": 10, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
    }


@worker_ready.connect
def say_ready(sender, **kwargs) -> None:
    """Tell the suite this worker consumes now (it waits for this before timing)."""
    redis.Redis.from_url(REDIS_URL).set(f"bench:ready:{sender.hostname.split('@')[0]}", 1)


@cache
def bookkeeping() -> redis.Redis:
    # Made lazily, in each pool process after the fork, never shared across one.
    return redis.Redis.from_url(REDIS_URL)


def note_run(seq, placed_at: float | None) -> None:
    now = time.time()
    pipe = bookkeeping().pipeline(transaction=False)
    pipe.hincrby(RUNS, str(seq), 1).set(FIRST, now, nx=True).set(LAST, now)
    if placed_at is not None:
        pipe.hset(LATENCY, str(seq), now - placed_at)
    pipe.execute()


@app.task(name="noop")
def noop(seq: int, placed_at: float | None = None) -> None:
    """The benchmarks' job: nothing but its own bookkeeping."""
    note_run(seq, placed_at)


@app.task(name="sleep")
def sleep(seq: str, seconds: float) -> None:
    note_run(seq, None)
    time.sleep(seconds)


def enqueue(args) -> None:
    def send_each(n):
        for seq in range(n):
            noop.delay(seq)

    emit(seconds=timed(send_each, args.n))


def bulk(args) -> None:
    calls = [group(noop.s(seq) for seq in seqs) for seqs in calls_of(args.n, args.per_call)]
    emit(seconds=timed(lambda: [jobs.apply_async() for jobs in calls]))


def paced_jobs(args) -> None:
    emit(placed=paced(lambda seq: noop.delay(seq, time.time()), args.every_ms, args.seconds))


def long_job(args) -> None:
    sleep.delay("long", args.sleep)
    emit(job="long")


COMMANDS = {"enqueue": enqueue, "bulk": bulk, "fill": bulk, "paced": paced_jobs, "long": long_job}
