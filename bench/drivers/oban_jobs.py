"""Oban's jobs for the benchmarks, in a module of their own so that a job's stored worker
name (this module's path and the class) imports the same in the client and the worker."""

import asyncio

from oban import worker


@worker(queue="default")
class Noop:
    """The benchmarks' job: nothing at all."""

    async def process(self, job):
        return None


@worker(queue="default", max_attempts=5)
class Sleep:
    """S5's long job."""

    async def process(self, job):
        await asyncio.sleep(job.args["seconds"])
