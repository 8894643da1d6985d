"""pgqueuer's side: the worker and the client.

    python -m bench.drivers pgqueuer install|enqueue|bulk|fill|paced|long --n N
    python -m bench.drivers pgqueuer worker [--batch-size 10] [--heartbeat-timeout 30]

The worker is what ``pgq run bench.drivers.pgqueuer_driver:create_queue_manager`` would
start, through ``pgqueuer.run``, which that command wraps: in pgqueuer 1.6.0 ``pgq run``
itself stops at start-up (its --log-level value reaches the logging setup as a str)."""

import asyncio
import json
import logging
import os
from contextlib import asynccontextmanager
from datetime import timedelta

import pgqueuer
import psycopg
from pgqueuer import PsycopgDriver, Queries, QueueManager

from bench.drivers.common import calls_of, emit, paced_async, seconds_taken

DSN = os.environ["BENCH_DATABASE_URL"]


@asynccontextmanager
async def create_queue_manager():
    """The worker's factory: one connection, the two entrypoints."""
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        manager = QueueManager(Queries(PsycopgDriver(conn)))

        @manager.entrypoint("noop")
        async def noop(job) -> None:
            """The benchmarks' job: nothing at all."""

        @manager.entrypoint("sleep")
        async def sleep(job) -> None:
            await asyncio.sleep(json.loads(job.payload)["seconds"])

        yield manager


def payload(seq: int, **extra) -> bytes:
    return json.dumps({"seq": seq, **extra}).encode()


def with_queries(work):
    """Run ``work(queries)`` on one fresh connection and return what it returns."""

    async def run():
        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
            return await work(Queries(PsycopgDriver(conn)))

    return asyncio.run(run())


def install(args) -> None:
    with_queries(lambda queries: queries.install())
    emit(installed=True)


def enqueue(args) -> None:
    async def enqueue_each(queries):
        for seq in range(args.n):
            await queries.enqueue("noop", payload(seq))

    emit(seconds=with_queries(lambda queries: seconds_taken(enqueue_each(queries))))


def bulk(args) -> None:
    batches = [(["noop"] * len(seqs), [payload(seq) for seq in seqs], [0] * len(seqs))
               for seqs in calls_of(args.n, args.per_call)]

    async def enqueue_all(queries):
        for batch in batches:
            await queries.enqueue(*batch)

    emit(seconds=with_queries(lambda queries: seconds_taken(enqueue_all(queries))))


def paced_jobs(args) -> None:
    emit(placed=with_queries(lambda queries: paced_async(lambda seq: queries.enqueue("noop", payload(seq)),
                                                         args.every_ms, args.seconds)))


def long_job(args) -> None:
    ids = with_queries(lambda queries: queries.enqueue("sleep", payload(0, seconds=args.sleep)))
    emit(job=ids[0])


def worker(args) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(pgqueuer.run(create_queue_manager, batch_size=args.batch_size,
                             heartbeat_timeout=timedelta(seconds=args.heartbeat_timeout)))


COMMANDS = {"worker": worker, "install": install, "enqueue": enqueue, "bulk": bulk, "fill": bulk,
            "paced": paced_jobs, "long": long_job}
