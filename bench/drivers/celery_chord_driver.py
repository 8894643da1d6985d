"""Celery's chord (S9): a group of no-op children and a callback that runs once they have
all returned, on Redis with acks late, as the suite's Celery runs
(``celery -A bench.drivers.celery_chord_driver worker``), and the client.

    python -m bench.drivers celery_chord chord|chords|group --n N --calls K

A chord needs a result backend, which the suite's other Celery tasks do without, so it
has an app of its own (the same Redis database). Each task is told its chord's number k.
Each child notes its run and when it returned; the callback notes its run, when it
began and how many results it got; the suite reads and checks these."""

import time

from celery import Celery, chord, group

# say_ready: the suite waits for this worker as for the others.
from bench.drivers.celery_driver import QUEUE, REDIS_URL, bookkeeping, say_ready  # noqa: F401
from bench.drivers.common import emit, timed_calls

RUNS = "bench:runs"

app = Celery("bench_chords", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(task_acks_late=True, task_default_queue=QUEUE, broker_connection_retry_on_startup=True)


@app.task(name="chord_child")
def child(k: int, seq: int) -> int:
    """A no-op but for its bookkeeping; its result is what the chord collects."""
    pipe = bookkeeping().pipeline(transaction=False)
    pipe.hincrby(RUNS, f"{k}:{seq}", 1).hset(f"bench:finished:{k}", str(seq), time.time()).execute()
    return seq


@app.task(name="chord_callback")
def callback(results: list, k: int) -> None:
    began = time.time()
    pipe = bookkeeping().pipeline(transaction=False)
    pipe.hincrby(RUNS, f"{k}:callback", 1)
    pipe.hset(f"bench:callback:{k}", mapping={"began": began, "results": len(results)}).execute()


def header(n: int, k: int = 0) -> group:
    return group(child.s(k, seq) for seq in range(n))


def place_chords(args) -> None:
    emit(seconds=timed_calls(lambda: header(args.n), lambda children: chord(children, callback.s()).apply_async(),
                             args.calls))


def place_groups(args) -> None:
    """The baseline: the same n messages, no callback."""
    emit(seconds=timed_calls(lambda: header(args.n), lambda children: children.apply_async(), args.calls))


def chords_one_by_one(args) -> None:
    """Place ``calls`` chords, each once the one before has run its callback (waiting on
    its result, idle), so that this process's start and exit fall outside the runs
    measured."""
    for k in range(args.calls):
        chord(header(args.n, k), callback.s(k)).apply_async().get(timeout=60)
    emit(chords=args.calls)


COMMANDS = {"chord": place_chords, "chords": chords_one_by_one, "group": place_groups}
