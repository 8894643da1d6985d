"""The queues under test, as the orchestrator sees them: how to install each, start its
workers, run its client driver, and read back from its own records what happened.

Every figure is read from the queue's own bookkeeping (rows, events, logs), never from
the client's guess, and the same records prove each job ran exactly once."""

import base64
import json
import os
import secrets
import subprocess
import time
from collections import Counter

import redis

from bench import harness
from bench.harness import BENCH, PEERS_PYTHON, PIZZAQ_PYTHON, ROOT, query, scalar

PEERS_BIN = BENCH / ".venv-peers" / "bin"
# pizzaq refuses its development key once DEBUG is off.
SECRET_KEY = secrets.token_urlsafe(50)
# Time a worker that does not say when it is ready gets to start, connect and go idle.
WARM_UP = 3.0


class Queue:
    """A queue under test; subclasses fill in how it works and where its records are."""

    name = label = ""
    python = PEERS_PYTHON
    # Where its processes run (pizzaq: the source measured).
    source = ROOT
    has_bulk = True
    # False: it has no way to run a dead worker's job again (S5 then tries it once).
    recovers = True
    # In words, for the results: what "defaults", "tuned" and recovery mean for it.
    default_worker = tuned_worker = recovery_setting = ""

    def env(self, db: str, recovery: bool = False, **extra) -> dict:
        return harness.child_env(BENCH_DATABASE_URL=db, BENCH_REDIS_URL=harness.REDIS_URL,
                                 BENCH_RECOVERY="1" if recovery else "0", **extra)

    def install(self, db: str) -> None:
        self.drive(db, "install", timeout=120)

    def prepare_run(self, db: str) -> None:
        """Anything a run needs besides its fresh database."""

    def drive(self, db: str, command: str, timeout: float = 600, recovery: bool = False, **options) -> dict:
        flags = [part for key, value in options.items() for part in (f"--{key.replace('_', '-')}", str(value))]
        cmd = [self.python, "-m", "bench.drivers", self.name, command, *flags]
        return harness.run_json(cmd, self.env(db, recovery), timeout, cwd=self.source)

    def start_worker(self, db: str, index: int, tuned: bool, recovery: bool = False, **settings):
        cmd = self.worker_command(index, tuned, recovery)
        return harness.start(cmd, self.env(db, recovery, **settings), f"{self.name}-worker{index}", cwd=self.source)

    def wait_ready(self, db: str, index: int) -> None:
        time.sleep(WARM_UP)

    def worker_command(self, index: int, tuned: bool, recovery: bool) -> list:
        raise NotImplementedError

    def stored(self, db: str) -> tuple[int, int]:
        """(jobs waiting, distinct job numbers among them): both n when nothing was lost
        or doubled on the way in."""
        raise NotImplementedError

    def finished(self, db: str) -> int:
        raise NotImplementedError

    def ran_once_problems(self, db: str, n: int) -> list[str]:
        """Why the n no-op jobs did not each run exactly once (empty: they did)."""
        raise NotImplementedError

    def drain_seconds(self, db: str) -> float:
        """From the first job's start to the last job's finish, as the queue recorded them."""
        raise NotImplementedError

    def latencies_ms(self, db: str) -> list[float]:
        """Place → start of every finished no-op job."""
        raise NotImplementedError

    def starts_of(self, db: str, job) -> int:
        """How many times the long job has started."""
        raise NotImplementedError

    def stored_problems(self, db: str, n: int) -> list[str]:
        total, distinct = self.stored(db)
        problems = [f"{total} jobs stored, not {n}"] if total != n else []
        return problems + ([f"{distinct} distinct jobs, not {n}"] if distinct != n else [])


def _count_problem(what: str, found: int, n: int) -> list[str]:
    return [] if found == n else [f"{found} {what}, not {n}"]


class Pizzaq(Queue):
    name = label = "pizzaq"
    python = PIZZAQ_PYTHON
    # Each tuned worker holds 100 orders, as a tuned pgqueuer worker claims batches of 100,
    # on two order threads: a no-op order never waits, so more threads only take turns at
    # the interpreter (8 threads drained 25,300 orders/s here, 2 threads 27,700).
    TUNED_CONCURRENCY, TUNED_PREFETCH = 2, 98
    default_worker = "runworker (concurrency 4, prefetch 12)"
    tuned_worker = f"runworker --concurrency {TUNED_CONCURRENCY} --prefetch {TUNED_PREFETCH}"
    recovery_setting = "notifier; worker timeout 10 s, heartbeat 2 s (defaults)"

    def env(self, db: str, recovery: bool = False, **extra) -> dict:
        # Production settings (with DEBUG on, Django keeps every query in memory), but
        # plain HTTP: the API is called on the loopback, with no TLS proxy in front.
        production = {"DEBUG": "False", "SECRET_KEY": SECRET_KEY, "SECURE_SSL_REDIRECT": "False"}
        env = super().env(db, recovery, **{"DATABASE_URL": db, "PIZZAQ_LOG_LEVEL": "WARNING", **production, **extra})
        # pizzaq's packages from the source measured; bench.drivers from this tree.
        env["PYTHONPATH"] = os.pathsep.join([str(self.source), str(ROOT)])
        return env

    @property
    def source(self):
        return harness.PIZZAQ_SOURCE

    def install(self, db: str) -> None:
        self.manage(db, "migrate", "--noinput", "-v0")

    def api_token(self, db: str) -> str:
        """A bearer token for the JSON API, of a user made for the bench."""
        self.manage(db, "shell", "-c", "from django.contrib.auth.models import User; User.objects.create_user('bench')")
        return self.manage(db, "createtoken", "bench").splitlines()[-1]

    def manage(self, db: str, *args, **extra_env) -> str:
        done = subprocess.run([self.python, "manage.py", *args], cwd=self.source, env=self.env(db, **extra_env),
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise harness.BenchError(f"manage.py {args[0]} failed: {done.stderr.strip()[-600:]}")
        return done.stdout.strip()

    def worker_command(self, index: int, tuned: bool, recovery: bool) -> list:
        concurrency = ["--concurrency", str(self.TUNED_CONCURRENCY), "--prefetch", str(self.TUNED_PREFETCH)] if tuned else []
        return [self.python, "manage.py", "runworker", "--name", f"S{index}", *concurrency]

    def serve_command(self, port: int, processes: int | None = None) -> list:
        """`manage.py serve` on ``port``, as `make run` serves (one process per core unless
        ``processes`` says)."""
        count = ["--processes", str(processes)] if processes is not None else []
        return [self.python, "manage.py", "serve", "--port", str(port), *count]

    def notifier(self, db: str, **settings):
        return harness.start([self.python, "manage.py", "notifier"], self.env(db, **settings), "pizzaq-notifier",
                             cwd=self.source)

    def wait_ready(self, db, index):
        # A worker is ready once registered: it owns buckets and LISTENs right after.
        alive = "SELECT count(*) FROM workers_worker WHERE name = %s AND status = 'alive'"
        harness.wait_for(lambda: scalar(db, alive, (f"S{index}",)), timeout=60, what=f"worker S{index}")

    def stored(self, db):
        return query(db, "SELECT count(*), count(DISTINCT payload->>'seq') FROM orders_order")[0]

    def finished(self, db):
        return scalar(db, "SELECT count(*) FROM orders_order WHERE status = 'done'")

    def ran_once_problems(self, db, n):
        total, distinct, done, once = query(db, """
            SELECT count(*), count(DISTINCT payload->>'seq'), count(*) FILTER (WHERE status = 'done'),
                   -- one claim (attempt) and one finished attempt in the history: one run
                   count(*) FILTER (WHERE attempt = 1 AND jsonb_array_length(history) = 1)
              FROM orders_order""")[0]
        return (_count_problem("orders", total, n) + _count_problem("distinct orders", distinct, n)
                + _count_problem("orders done", done, n) + _count_problem("orders claimed once", once, n))

    def drain_seconds(self, db):
        return scalar(db, "SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM orders_order")

    def latencies_ms(self, db):
        # started_at of a finished order: when its handler began.
        return [row[0] for row in query(db, """
            SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 FROM orders_order
             WHERE status = 'done'""")]

    def claim_latencies_ms(self, db):
        return [row[0] for row in query(db, """
            SELECT extract(epoch FROM (history -> -1 ->> 'claimed')::timestamptz - created_at)::float8 * 1000
              FROM orders_order WHERE status = 'done'""")]

    def starts_of(self, db, job):
        # Every claim bumps attempt: it counts the starts.
        return scalar(db, "SELECT coalesce(max(attempt) FILTER (WHERE status = 'running'), 0) FROM orders_order "
                          "WHERE id = %s", (job,))


class Procrastinate(Queue):
    name = label = "procrastinate"
    default_worker = "worker (concurrency 1)"
    tuned_worker = "worker --concurrency 10"
    recovery_setting = ("none built in; the documented retry-stalled-jobs periodic task "
                        "(every 1 s, stalled after 10 s, heartbeat 2 s)")

    def worker_command(self, index, tuned, recovery):
        app = "--app=bench.drivers.procrastinate_driver.app"
        concurrency = ["--concurrency", "10"] if tuned else []
        return [PEERS_BIN / "procrastinate", "--log-level", "warning", app, "worker", "--name", f"w{index}",
                *concurrency]

    def stored(self, db):
        return query(db, "SELECT count(*), count(DISTINCT args->>'seq') FROM procrastinate_jobs "
                         "WHERE task_name = 'noop'")[0]

    def finished(self, db):
        return scalar(db, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'noop' AND status = 'succeeded'")

    def ran_once_problems(self, db, n):
        total, distinct, done, once = query(db, """
            WITH starts AS (
                SELECT j.id, j.args, j.status, count(e.id) FILTER (WHERE e.type = 'started') AS started
                  FROM procrastinate_jobs j LEFT JOIN procrastinate_events e ON e.job_id = j.id
                 WHERE j.task_name = 'noop' GROUP BY j.id)
            SELECT count(*), count(DISTINCT args->>'seq'), count(*) FILTER (WHERE status = 'succeeded'),
                   count(*) FILTER (WHERE started = 1) FROM starts""")[0]
        return (_count_problem("jobs", total, n) + _count_problem("distinct jobs", distinct, n)
                + _count_problem("jobs succeeded", done, n) + _count_problem("jobs started once", once, n))

    def drain_seconds(self, db):
        return scalar(db, """
            SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'succeeded')
                                    - min(at) FILTER (WHERE type = 'started'))::float8
              FROM procrastinate_events""")

    def latencies_ms(self, db):
        return [row[0] for row in query(db, """
            SELECT extract(epoch FROM max(at) FILTER (WHERE type = 'started')
                                    - max(at) FILTER (WHERE type = 'deferred'))::float8 * 1000
              FROM procrastinate_events GROUP BY job_id HAVING count(*) FILTER (WHERE type = 'succeeded') = 1""")]

    def starts_of(self, db, job):
        return scalar(db, "SELECT count(*) FROM procrastinate_events WHERE job_id = %s AND type = 'started'", (job,))

    def wait_ready(self, db, index):
        # Each running worker registers a row (and heartbeats it).
        harness.wait_for(lambda: scalar(db, "SELECT count(*) FROM procrastinate_workers") > index,
                         timeout=60, what=f"procrastinate worker {index}")


class Pgqueuer(Queue):
    name = label = "pgqueuer"
    default_worker = "worker (batch size 10)"
    tuned_worker = "worker, batch size 100"
    recovery_setting = "re-picks a job whose heartbeat is older than --heartbeat-timeout (set to 10 s; default 30 s)"

    def worker_command(self, index, tuned, recovery):
        cmd = [self.python, "-m", "bench.drivers", self.name, "worker"]
        return cmd + (["--batch-size", "100"] if tuned else []) + (["--heartbeat-timeout", "10"] if recovery else [])

    def stored(self, db):
        return query(db, """
            SELECT count(*), count(DISTINCT convert_from(payload, 'UTF8')::jsonb->>'seq')
              FROM pgqueuer WHERE entrypoint = 'noop'""")[0]

    def finished(self, db):
        return scalar(db, "SELECT count(*) FROM pgqueuer_log WHERE entrypoint = 'noop' AND status = 'successful'")

    def ran_once_problems(self, db, n):
        # A finished job's row is deleted; its log keeps one line per transition.
        total, done, once = query(db, """
            WITH runs AS (
                SELECT job_id, count(*) FILTER (WHERE status = 'picked') AS picked,
                       count(*) FILTER (WHERE status = 'successful') AS ok
                  FROM pgqueuer_log WHERE entrypoint = 'noop' GROUP BY job_id)
            SELECT count(*), count(*) FILTER (WHERE ok = 1), count(*) FILTER (WHERE picked = 1) FROM runs""")[0]
        left = scalar(db, "SELECT count(*) FROM pgqueuer WHERE entrypoint = 'noop'")
        return (_count_problem("jobs logged", total, n) + _count_problem("jobs successful", done, n)
                + _count_problem("jobs picked once", once, n) + _count_problem("jobs left in the queue", left, 0))

    def drain_seconds(self, db):
        return scalar(db, """
            SELECT extract(epoch FROM max(created) FILTER (WHERE status = 'successful')
                                    - min(created) FILTER (WHERE status = 'picked'))::float8
              FROM pgqueuer_log WHERE entrypoint = 'noop'""")

    def latencies_ms(self, db):
        return [row[0] for row in query(db, """
            SELECT extract(epoch FROM min(created) FILTER (WHERE status = 'picked')
                                    - min(created) FILTER (WHERE status = 'queued'))::float8 * 1000
              FROM pgqueuer_log WHERE entrypoint = 'noop' GROUP BY job_id
            HAVING count(*) FILTER (WHERE status = 'successful') = 1""")]

    def starts_of(self, db, job):
        return scalar(db, "SELECT count(*) FROM pgqueuer_log WHERE job_id = %s AND status = 'picked'", (job,))


class ObanQueue(Queue):
    """Oban, the Python port of Elixir's Oban (PyPI ``oban``): its worker is ``oban start``."""

    name = label = "oban"
    default_worker = "oban start --queues default:10"
    tuned_worker = "oban start --queues default:100"
    recovery_setting = ("rescues a job still executing rescue_after s after it started, looked for every "
                        "interval s (set to 10 s and 1 s; defaults 300 s and 60 s)")
    NOOP = "bench.drivers.oban_jobs.Noop"

    def worker_command(self, index, tuned, recovery):
        limit = 100 if tuned else 10
        config = ["--config", str(BENCH / "drivers" / "oban_recovery.toml")] if recovery else []
        return [PEERS_BIN / "oban", "start", *config, "--queues", f"default:{limit}", "--node", f"w{index}",
                "--log-level", "WARNING"]

    def env(self, db, recovery=False, **extra):
        return super().env(db, recovery, OBAN_DSN=db, **extra)

    def stored(self, db):
        return query(db, "SELECT count(*), count(DISTINCT args->>'seq') FROM oban_jobs WHERE worker = %s",
                     (self.NOOP,))[0]

    def finished(self, db):
        return scalar(db, "SELECT count(*) FROM oban_jobs WHERE worker = %s AND state = 'completed'", (self.NOOP,))

    def ran_once_problems(self, db, n):
        # Oban keeps finished jobs; ``attempt`` counts the times a job was fetched to run.
        total, done, once = query(db, """
            SELECT count(*), count(*) FILTER (WHERE state = 'completed'),
                   count(*) FILTER (WHERE attempt = 1)
              FROM oban_jobs WHERE worker = %s""", (self.NOOP,))[0]
        return (_count_problem("jobs", total, n) + _count_problem("jobs completed", done, n)
                + _count_problem("jobs run once", once, n))

    def drain_seconds(self, db):
        return scalar(db, """
            SELECT extract(epoch FROM max(completed_at) - min(attempted_at))::float8
              FROM oban_jobs WHERE worker = %s""", (self.NOOP,))

    def latencies_ms(self, db):
        # attempted_at: stamped by the statement that fetches the job, as pgqueuer's picked.
        return [row[0] for row in query(db, """
            SELECT extract(epoch FROM attempted_at - inserted_at)::float8 * 1000
              FROM oban_jobs WHERE worker = %s AND state = 'completed'""", (self.NOOP,))]

    def starts_of(self, db, job):
        return scalar(db, "SELECT attempt FROM oban_jobs WHERE id = %s", (job,))


class DjangoTasks(Queue):
    name = "django_tasks"
    label = "django-tasks-db"
    has_bulk = False
    recovers = False
    default_worker = "db_worker (one task at a time)"
    tuned_worker = "db_worker --no-startup-delay"
    recovery_setting = "none: a dead worker's task stays RUNNING"
    TABLE = "django_tasks_database_dbtaskresult"

    def env(self, db, recovery=False, **extra):
        return super().env(db, recovery, DJANGO_SETTINGS_MODULE="bench.drivers.django_tasks_settings", **extra)

    def install(self, db):
        harness.run_json([self.python, "-c", "import django, json; from django.core.management import call_command; "
                          "django.setup(); call_command('migrate', verbosity=0); print(json.dumps({}))"],
                         self.env(db), timeout=120)

    def worker_command(self, index, tuned, recovery):
        # Verbosity 0: no log line per task, like every other worker here.
        cmd = [self.python, "-m", "django", "db_worker", "--verbosity", "0", "--worker-id", f"w{index}"]
        return cmd + (["--no-startup-delay"] if tuned else [])

    def stored(self, db):
        return query(db, f"SELECT count(*), count(DISTINCT args_kwargs->'args'->>0) FROM {self.TABLE}")[0]

    def finished(self, db):
        return scalar(db, f"SELECT count(*) FROM {self.TABLE} WHERE status = 'SUCCESSFUL'")

    def ran_once_problems(self, db, n):
        total, distinct, done, once = query(db, f"""
            SELECT count(*), count(DISTINCT args_kwargs->'args'->>0), count(*) FILTER (WHERE status = 'SUCCESSFUL'),
                   -- every claim appends the claiming worker's id
                   count(*) FILTER (WHERE jsonb_array_length(worker_ids) = 1)
              FROM {self.TABLE} WHERE task_path LIKE '%%.noop'""")[0]
        return (_count_problem("tasks", total, n) + _count_problem("distinct tasks", distinct, n)
                + _count_problem("tasks successful", done, n) + _count_problem("tasks claimed once", once, n))

    def drain_seconds(self, db):
        return scalar(db, f"SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM {self.TABLE}")

    def latencies_ms(self, db):
        return [row[0] for row in query(db, f"""
            SELECT extract(epoch FROM started_at - enqueued_at)::float8 * 1000 FROM {self.TABLE}
             WHERE status = 'SUCCESSFUL'""")]

    def starts_of(self, db, job):
        return scalar(db, f"SELECT jsonb_array_length(worker_ids) FROM {self.TABLE} WHERE id = %s", (job,))


class Celery(Queue):
    name = "celery"
    label = "celery (redis, acks late)"
    default_worker = "worker (prefork, concurrency = cores = 2, prefetch 4)"
    tuned_worker = "worker --pool solo --prefetch-multiplier 64"
    recovery_setting = "redelivery after the broker's visibility_timeout (set to 10 s, swept every 1 s; default 1 h)"
    QUEUE = "pizzaq_bench"
    RUNS, LATENCY, FIRST, LAST = "bench:runs", "bench:latency", "bench:first", "bench:last"
    # The module the workers import the app and its tasks from.
    APP = "bench.drivers.celery_driver"

    def install(self, db):
        """Nothing to install: Redis needs no schema (the database stays empty)."""

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(harness.REDIS_URL)

    def prepare_run(self, db):
        # The bench's own Redis database number only (see harness.REDIS_URL).
        self.redis().flushdb()

    def worker_command(self, index, tuned, recovery):
        cmd = [PEERS_BIN / "celery", "-A", self.APP, "worker", "-l", "WARNING",
               "-n", f"w{index}@%h"]
        return cmd + (["--pool", "solo", "--prefetch-multiplier", "64"] if tuned else [])

    def stored(self, db):
        messages = self.redis().lrange(self.QUEUE, 0, -1)
        seqs = {json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in messages}
        return len(messages), len(seqs)

    def finished(self, db):
        return self.redis().hlen(self.RUNS)

    def ran_once_problems(self, db, n):
        r = self.redis()
        runs = Counter(int(v) for v in r.hvals(self.RUNS))
        once = runs.get(1, 0)
        return (_count_problem("jobs ran", sum(runs.values()), n) + _count_problem("jobs ran once", once, n)
                + _count_problem("messages left in the queue", r.llen(self.QUEUE), 0)
                + _count_problem("messages left unacked", r.hlen("unacked"), 0))

    def drain_seconds(self, db):
        r = self.redis()
        return float(r.get(self.LAST)) - float(r.get(self.FIRST))

    def latencies_ms(self, db):
        return [float(v) * 1000 for v in self.redis().hvals(self.LATENCY)]

    def starts_of(self, db, job):
        return int(self.redis().hget(self.RUNS, job) or 0)

    def wait_ready(self, db, index):
        # Set by the worker_ready signal (see celery_driver).
        harness.wait_for(lambda: self.redis().exists(f"bench:ready:w{index}"), timeout=60,
                         what=f"celery worker w{index}")


ALL = [Pizzaq(), Procrastinate(), Pgqueuer(), ObanQueue(), DjangoTasks(), Celery()]


def select(names: list[str] | None) -> list[Queue]:
    if not names:
        return ALL
    unknown = set(names) - {q.name for q in ALL}
    if unknown:
        raise SystemExit(f"unknown queue(s) {', '.join(sorted(unknown))}; known: {', '.join(q.name for q in ALL)}")
    return [q for q in ALL if q.name in names]
