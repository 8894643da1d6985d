"""Fixtures shared by every test: settings overrides, the database other processes see,
and real worker processes."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import OperationalError, connection

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """PostgreSQL-only tests are skipped, visibly, when the suite runs on SQLite."""
    from django.db import connections

    if connections["default"].vendor == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL; this run is on SQLite")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pizzaq_settings(settings):
    """Set PIZZAQ_* values for one test: ``pizzaq_settings(max_attempts=2)``."""

    def apply(**values):
        settings.PIZZAQ = {**settings.PIZZAQ, **values}

    return apply


def database_url() -> str:
    """A URL for the test database, for processes the tests start."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    return f"postgres://{auth}@{params['HOST'] or 'localhost'}:{params['PORT'] or 5432}/{params['NAME']}"


def process_env(**overrides) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1",
           "PIZZAQ_HANDLER_MODULES": TEST_HANDLER_MODULES}
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def run_python(code: str, **env) -> str:
    """Run ``code`` in a fresh interpreter on the test database; what it printed."""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=process_env(**env),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


class Processes:
    """Real subprocesses started by a test; whatever is left is killed at teardown."""

    def __init__(self, tmp_path):
        self.tmp_path, self.started = tmp_path, []

    def worker(self, name: str, concurrency: int = 1, prefetch: int | None = None, extra_args=(),
               **env) -> subprocess.Popen:
        ahead = [] if prefetch is None else ["--prefetch", str(prefetch)]
        return self.start(["runworker", "--name", name, "--concurrency", str(concurrency), *ahead, *extra_args],
                          name, **env)

    def notifier(self, identity: str = "N1", **env) -> subprocess.Popen:
        return self.start(["notifier", "--identity", identity], f"notifier-{identity}", **env)

    def start(self, args: list[str], label: str, **env) -> subprocess.Popen:
        """``manage.py`` with ``args``."""
        return self.start_command([sys.executable, "manage.py", *args], label, **env)

    def start_command(self, command: list[str], label: str, **env) -> subprocess.Popen:
        log = open(self.tmp_path / f"{label}.log", "w")
        process = subprocess.Popen(
            command, cwd=ROOT, env=process_env(**env),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        process.log_path = log.name
        self.started.append(process)
        return process

    def stop_all(self):
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@pytest.fixture
def pgbouncer(transactional_db):
    """A PgBouncer in transaction mode in front of the test database, and the settings that
    put a process behind it: ``processes.worker("S0", **pgbouncer.env)``. It refuses the
    startup options a transaction pooler cannot carry, rather than drop them unseen."""
    from tests.system.pgbouncer import PgBouncer

    params = connection.settings_dict
    with PgBouncer(params["HOST"] or "127.0.0.1", int(params["PORT"] or 5432), params["NAME"],
                   ignore_startup_parameters=("extra_float_digits",)) as bouncer:
        bouncer.env = {"DATABASE_URL": bouncer.url(), "DATABASE_TRANSACTION_POOLER": "true"}
        yield bouncer


@pytest.fixture(scope="session", autouse=True)
def end_stray_sessions(django_db_setup, django_db_blocker):
    """Before the test database is dropped, end the sessions still open on it: killed
    processes' (the server notices a moment late) and worker threads' of this one."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                               " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        except OperationalError:
            pass  # a run whose tests never asked for the database (one file, say) made none


@pytest.fixture
def processes(tmp_path, transactional_db):
    started = Processes(tmp_path)
    yield started
    started.stop_all()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05, message: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


@pytest.fixture
def progress_gate():
    """The gate the ``report`` handler (tests/handlers.py) named "progress" waits at after
    each step: ``release()`` lets it on one step."""
    from tests.handlers import GATES

    GATES["progress"] = threading.Semaphore(0)
    yield GATES["progress"]
    GATES.pop("progress").release(10)  # a handler still waiting goes on


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher is slow on purpose; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The failover tests' handlers, registered here and in every process the tests start.
import tests.handlers  # noqa: E402,F401

TEST_HANDLER_MODULES = "pizzaq.menu,orders.tasks_backend,tests.handlers"
