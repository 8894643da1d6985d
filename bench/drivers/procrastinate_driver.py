"""procrastinate's side: the app and its tasks (workers load them with
``procrastinate --app=bench.drivers.procrastinate_driver.app worker``) and the client.

    python -m bench.drivers procrastinate install|enqueue|bulk|fill|paced|long --n N
"""

import asyncio
import os

from procrastinate import App, PsycopgConnector

from bench.drivers.common import calls_of, emit, paced, timed

# S5 only: procrastinate does not requeue a dead worker's jobs by itself; its documented
# answer is a periodic task that retries "stalled" jobs. Heartbeat every 2 s and count a
# worker stalled after 10 s of silence, as pizzaq's defaults do.
RECOVERY = os.environ.get("BENCH_RECOVERY") == "1"
STALLED_AFTER = 10.0

app = App(
    connector=PsycopgConnector(conninfo=os.environ["BENCH_DATABASE_URL"]),
    worker_defaults={"update_heartbeat_interval": 2.0} if RECOVERY else None,
)


@app.task(name="noop")
async def noop(seq: int) -> None:
    """The benchmarks' job: nothing at all (async, so no thread hop)."""


@app.task(name="sleep")
async def sleep(seq: int, seconds: float) -> None:
    await asyncio.sleep(seconds)


if RECOVERY:
    # Every second ("* * * * * *": croniter's sixth field is seconds).
    @app.periodic(cron="* * * * * *")
    @app.task(name="retry_stalled_jobs", queueing_lock="retry_stalled_jobs", pass_context=True)
    async def retry_stalled_jobs(context, timestamp):
        for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER):
            await app.job_manager.retry_job(job)


def install(args) -> None:
    with app.open():
        app.schema_manager.apply_schema()
    emit(installed=True)


def enqueue(args) -> None:
    def defer_each(n):
        for seq in range(n):
            noop.defer(seq=seq)

    with app.open():
        emit(seconds=timed(defer_each, args.n))


def bulk(args) -> None:
    calls = [[{"seq": seq} for seq in seqs] for seqs in calls_of(args.n, args.per_call)]
    with app.open():
        emit(seconds=timed(lambda: [noop.batch_defer(*jobs) for jobs in calls]))


def paced_jobs(args) -> None:
    with app.open():
        emit(placed=paced(lambda seq: noop.defer(seq=seq), args.every_ms, args.seconds))


def long_job(args) -> None:
    with app.open():
        emit(job=sleep.defer(seq=0, seconds=args.sleep))


COMMANDS = {"install": install, "enqueue": enqueue, "bulk": bulk, "fill": bulk, "paced": paced_jobs, "long": long_job}
