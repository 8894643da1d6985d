"""What every scenario shares: fresh databases, child processes, waiting, statistics,
tables and JSON results. Runs under bench/.venv-peers (psycopg and redis, no queue code)."""

import atexit
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
PIZZAQ_PYTHON = ROOT / ".venv" / "bin" / "python"
# The pizzaq source measured: the working tree, or a snapshot of a commit (--pizzaq-ref).
PIZZAQ_SOURCE = ROOT
PIZZAQ_COMMIT = ""
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"

PG_SERVER = os.environ.get("PIZZAQ_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("PIZZAQ_BENCH_REDIS", "redis://127.0.0.1:6379/13")
# Every database this suite makes starts with this; nothing else is ever dropped.
DB_PREFIX = "pizzaq_bench_"


class BenchError(RuntimeError):
    """A measurement could not be made; the message says why (it is recorded, not hidden)."""


# --- databases -------------------------------------------------------------------------


def db_url(name: str) -> str:
    return f"{PG_SERVER}/{name}"


def _admin():
    return psycopg.connect(db_url("postgres"), autocommit=True)


def drop_database(name: str) -> None:
    assert name.startswith(DB_PREFIX), f"refusing to drop {name}: not a bench database"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(name: str, template: str | None = None) -> str:
    drop_database(name)
    with _admin() as admin:
        clause = f' TEMPLATE "{template}"' if template else ""
        admin.execute(f'CREATE DATABASE "{name}"{clause}')
    return db_url(name)


@contextmanager
def scenario_databases(scenario: str, queue):
    """Yield a function that hands out a fresh database for each run of ``queue``.

    The queue's schema is installed once into a template; each run then gets a copy
    (CREATE DATABASE ... TEMPLATE is a file copy, far faster than migrating again), so
    no run inherits another's dead rows. Everything is dropped at the end."""
    template = f"{DB_PREFIX}{scenario}_{queue.name}_tpl"
    run_db = f"{DB_PREFIX}{scenario}_{queue.name}"
    queue.install(create_database(template))

    def fresh() -> str:
        return create_database(run_db, template)

    try:
        yield fresh
    finally:
        drop_database(run_db)
        drop_database(template)


def query(url: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def scalar(url: str, sql: str, params=()):
    return query(url, sql, params)[0][0]


# --- processes -------------------------------------------------------------------------


def snapshot(ref: str) -> None:
    """A copy of pizzaq as committed at ``ref`` (git archive: the repository is only
    read), so a run measures one fixed version while the working tree keeps changing."""
    global PIZZAQ_SOURCE, PIZZAQ_COMMIT
    PIZZAQ_COMMIT = _git("rev-parse", "--short", ref)
    target = Path(tempfile.mkdtemp(prefix="pizzaq-bench-src-"))
    archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", target], input=archive.stdout, check=True)
    # The suite itself always comes from this tree, never from the snapshot.
    shutil.rmtree(target / "bench", ignore_errors=True)
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    PIZZAQ_SOURCE = target


def child_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_json(cmd: list, env: dict, timeout: float, cwd: Path = ROOT) -> dict:
    """Run a driver to completion and return the JSON object it prints last."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(map(str, cmd[:4]))} failed: {done.stderr.strip()[-600:]}")
    # The last JSON line: a profiler wrapping the driver may print after it.
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])


def start(cmd: list, env: dict, log_name: str, cwd: Path = ROOT) -> subprocess.Popen:
    """Start a long-running child in its own session, so it and its children can be
    killed together (a Celery worker is several processes). Its output goes to
    results/LOG_NAME.log.tmp (ignored by git), to read when a run fails."""
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{log_name}.log.tmp", "w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(*processes: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM each child's whole session at once, then SIGKILL whatever is left after
    ``grace`` (a worker busy with a long job may not finish it)."""
    for process in processes:
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(process, signal.SIGKILL)
        process.wait()


def kill9(process: subprocess.Popen) -> None:
    """A crash: every process of the worker dies at once, nothing is cleaned up."""
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


@contextmanager
def running(*processes: subprocess.Popen):
    """Stop every listed child (the list may grow inside the block) on the way out,
    however the block ends."""
    live = list(processes)
    try:
        yield live
    finally:
        stop(*live)


def wait_for(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


# --- statistics and reporting ----------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one figure; ``higher_is_better`` orients the ratios."""

    unit: str
    higher_is_better: bool
    values: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def summary(self) -> dict:
        spread = {"min": min(self.values), "max": max(self.values)} if self.values else {}
        return {"unit": self.unit, "runs": self.values, "median": self.median, **spread, "notes": self.notes}

    def cell(self) -> str:
        """"median (min–max) unit", then why any run gave no figure."""
        if not self.values:
            return "; ".join(self.notes) or "n/a"
        text = f"{fmt(self.median)} ({fmt(min(self.values))}–{fmt(max(self.values))}) {self.unit}"
        return text + (" ⚠ " + "; ".join(self.notes) if self.notes else "")


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the value that ``fraction`` of the samples do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(fraction * len(ordered))) - 1))]


def ratio(pizzaq: Series, peer: Series) -> str:
    """pizzaq's median against the peer's, oriented so that above 1 means pizzaq is better."""
    if pizzaq.median is None or peer.median is None or 0 in (pizzaq.median, peer.median):
        return "n/a"
    value = pizzaq.median / peer.median if pizzaq.higher_is_better else peer.median / pizzaq.median
    return f"{value:.2f}×"


@dataclass
class Variant:
    """One row of a scenario: a queue, set up one way. ``measure(db)`` returns the run's
    figures, or raises BenchError (its check failed, or it could not run)."""

    label: str
    queue: object
    measure: object
    group: str = ""
    # At most this many runs (a queue with no mechanism to measure needs one).
    max_runs: int | None = None


def side_by_side(scenario: str, variants: list[Variant], figures: dict, runs: int) -> dict:
    """Run every variant ``runs`` times, interleaved (run 1 of each, then run 2 ...), so
    a noisy spell on the machine lands on all of them rather than on one."""
    series = {(v.label, name): Series(*spec) for v in variants for name, spec in figures.items()}
    with ExitStack() as stack:
        databases = {}
        for v in variants:
            if v.queue.name not in databases:
                databases[v.queue.name] = stack.enter_context(scenario_databases(scenario, v.queue))
        for run in range(1, runs + 1):
            for v in variants:
                if v.max_runs is not None and run > v.max_runs:
                    continue
                outcome = _measure_once(v, databases[v.queue.name], series, figures)
                log(f"{scenario} run {run}/{runs} {v.label}: {outcome}")
    return {name: [(v, series[v.label, name]) for v in variants] for name in figures}


def _measure_once(variant: Variant, fresh_db, series: dict, figures: dict) -> str:
    db = fresh_db()
    try:
        variant.queue.prepare_run(db)
        measured = variant.measure(db)
    except (BenchError, subprocess.TimeoutExpired) as error:
        for name in figures:
            series[variant.label, name].note(str(error))
        return f"no figure: {error}"
    for name, value in measured.items():
        series[variant.label, name].values.append(value)
    return ", ".join(f"{name} {fmt(value)}" for name, value in measured.items())


def print_table(title: str, rows: list) -> None:
    """A markdown table of ``(variant, series)`` rows: median (min–max) and pizzaq's ratio
    to each peer of the same group."""
    print(f"\n#### {title}\n\n| group | queue | median (min–max) | pizzaq vs this |\n|---|---|---|---|")
    for variant, series in rows:
        base = next((s for v, s in rows if v.group == variant.group and v.queue.name == "pizzaq"), None)
        versus = "—" if base is None or variant.queue.name == "pizzaq" else ratio(base, series)
        print(f"| {variant.group} | {variant.label} | {series.cell()} | {versus} |")
    print(flush=True)


def tables_json(tables: dict) -> dict:
    return {name: [{"label": v.label, "group": v.group, **s.summary()} for v, s in rows]
            for name, rows in tables.items()}


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": scalar(db_url("postgres"), "SHOW server_version"),
        "synchronous_commit": scalar(db_url("postgres"), "SHOW synchronous_commit"),
        "pizzaq_measured": f"commit {PIZZAQ_COMMIT}" if PIZZAQ_COMMIT else
        f"working tree at {_git('rev-parse', '--short', 'HEAD')} with "
        f"{len(_git('status', '--porcelain').splitlines())} uncommitted files",
    }


PEER_PACKAGES = ["procrastinate", "pgqueuer", "oban", "django-tasks-db", "celery", "kombu", "redis", "Django", "psycopg"]
PIZZAQ_PACKAGES = ["Django", "psycopg", "uvicorn", "channels"]


def versions() -> dict:
    """Package versions on both sides: pizzaq's .venv and the peers' own."""
    script = ("import json, sys; from importlib.metadata import version; "
              "print(json.dumps({p: version(p) for p in sys.argv[1:]}))")
    pizzaq = run_json([PIZZAQ_PYTHON, "-c", script, *PIZZAQ_PACKAGES], child_env(), timeout=60)
    peers = run_json([PEERS_PYTHON, "-c", script, *PEER_PACKAGES], child_env(), timeout=60)
    redis_server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return {**{f"pizzaq's {k}": v for k, v in pizzaq.items()}, **peers,
            "redis-server": next((w[2:] for w in redis_server if w.startswith("v=")), "?")}


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def write_results(scenario: str, payload: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{scenario}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2, default=str) + "\n")
    return path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
