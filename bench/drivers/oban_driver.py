"""Oban's side (the Python port of Elixir's Oban): the client. Its worker is Oban's own
command line, ``oban start`` (see bench/queues.py).

    python -m bench.drivers oban install|enqueue|bulk|fill|paced|long --n N"""

import asyncio
import os

from oban import Oban
from oban.schema import install as install_schema

from bench.drivers.common import calls_of, emit, paced_async, seconds_taken
from bench.drivers.oban_jobs import Noop, Sleep

DSN = os.environ["BENCH_DATABASE_URL"]


def with_oban(work):
    """Run ``work(oban)`` with a client (no queues: it only enqueues) on its own pool."""

    async def run():
        pool = await Oban.create_pool(DSN, min_size=1, max_size=2)
        try:
            async with Oban(pool=pool) as oban:
                return await work(oban)
        finally:
            await pool.close()

    return asyncio.run(run())


def install(args) -> None:
    async def run():
        pool = await Oban.create_pool(DSN, min_size=1, max_size=1)
        try:
            await install_schema(pool)
        finally:
            await pool.close()

    asyncio.run(run())
    emit(installed=True)


def enqueue(args) -> None:
    async def enqueue_each(oban):
        for seq in range(args.n):
            await oban.enqueue(Noop.new({"seq": seq}))

    emit(seconds=with_oban(lambda oban: seconds_taken(enqueue_each(oban))))


def bulk(args) -> None:
    calls = [[Noop.new({"seq": seq}) for seq in seqs] for seqs in calls_of(args.n, args.per_call)]

    async def enqueue_all(oban):
        for jobs in calls:
            await oban.enqueue_many(jobs)

    emit(seconds=with_oban(lambda oban: seconds_taken(enqueue_all(oban))))


def paced_jobs(args) -> None:
    emit(placed=with_oban(lambda oban: paced_async(lambda seq: oban.enqueue(Noop.new({"seq": seq})),
                                                   args.every_ms, args.seconds)))


def long_job(args) -> None:
    job = with_oban(lambda oban: oban.enqueue(Sleep.new({"seconds": args.sleep})))
    emit(job=job.id)


COMMANDS = {"install": install, "enqueue": enqueue, "bulk": bulk, "fill": bulk, "paced": paced_jobs,
            "long": long_job}
