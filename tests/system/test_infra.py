"""The system tests' own infrastructure: a private PostgreSQL, PgBouncer, a cuttable network."""

import os
import subprocess
import sys

import psycopg
import pytest

from tests.system import pgbouncer
from tests.system.netns import NetworkNamespace
from tests.system.pgbouncer import PgBouncer
from tests.system.postgres_instance import ROOT, PostgresInstance, migrated_database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.system,
    # Unused here, but the suite's session teardown (end_stray_sessions) connects to the
    # test database, which pytest-django creates only if some test asks for it.
    pytest.mark.django_db,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: runs servers as postgres, creates namespaces"),
]

# Run inside the namespace: one connection attempt, and how it ended.
CONNECT = """
import sys, time, psycopg
started = time.monotonic()
try:
    psycopg.connect(sys.argv[1], connect_timeout=2).close()
    print("connected")
except psycopg.OperationalError as error:
    print(f"failed after {time.monotonic() - started:.1f} s: {error}")
"""


def test_instance_keeps_committed_data_across_a_crash():
    with PostgresInstance() as instance:
        with psycopg.connect(instance.url()) as conn:
            conn.execute("CREATE TABLE kept (value text)")
            conn.execute("INSERT INTO kept VALUES ('before the crash')")
        instance.stop("immediate")
        assert not instance.running()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(instance.url(), connect_timeout=2)
        instance.start()
        with psycopg.connect(instance.url()) as conn:
            assert conn.execute("SELECT value FROM kept").fetchall() == [("before the crash",)]
        assert "database system was interrupted" in instance.log_path.read_text()
    assert not instance.dir.exists()


@pytest.mark.skipif(pgbouncer.binary() is None, reason="pgbouncer is not installed")
def test_pgbouncer_pools_transactions_for_django():
    with PostgresInstance() as instance:
        migrated_database(instance, "infra")
        with PgBouncer("127.0.0.1", instance.port, "infra", pool_size=1) as bouncer:
            assert pool_mode(bouncer) == "transaction"
            # One server connection, two clients holding theirs open: only transaction
            # pooling lets both run queries, on the same backend.
            with psycopg.connect(bouncer.url(), autocommit=True) as one, \
                    psycopg.connect(bouncer.url(), autocommit=True) as other:
                pids = [conn.execute("SELECT pg_backend_pid()").fetchone()[0] for conn in (one, other)]
            assert pids[0] == pids[1]
            # PgBouncer 1.18 refuses "options"; ignored (our default), it is dropped unapplied.
            with psycopg.connect(bouncer.url(), options="-c statement_timeout=5000") as conn:
                assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
            assert django_count(bouncer.url(), "django_migrations") > 0


def pool_mode(bouncer: PgBouncer) -> str:
    # The admin console speaks the simple query protocol only: a ClientCursor uses it.
    with psycopg.connect(bouncer.url("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor) as admin:
        cursor = admin.execute("SHOW POOLS")
        columns = [column.name for column in cursor.description]
        pools = {row[0]: dict(zip(columns, row)) for row in cursor.fetchall()}
    return pools[bouncer.dbname]["pool_mode"]


def django_count(url: str, table: str) -> int:
    """Rows in ``table``, counted by pizzaq's Django settings connecting to ``url``."""
    code = ("from django.db import connection\n"
            f"with connection.cursor() as cursor: cursor.execute('SELECT count(*) FROM {table}');"
            " print(cursor.fetchone()[0])")
    # Server-side prepared statements do not survive PgBouncer 1.18's transaction pooling.
    env = {**os.environ, "DATABASE_URL": url, "DATABASE_PREPARED_STATEMENTS": "false"}
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


def test_namespace_reaches_the_host_until_cut():
    with NetworkNamespace() as ns, PostgresInstance(listen_addresses=("127.0.0.1", ns.host_address)) as instance:
        url = instance.url(host=ns.host_address)
        assert connect_from(ns, url) == "connected"
        ns.cut()
        # Silence, not an error: the attempt waits out its whole timeout.
        outcome = connect_from(ns, url)
        assert outcome.startswith("failed after 2.") and "timeout" in outcome, outcome
        ns.heal()
        assert connect_from(ns, url) == "connected"
        ns.cut()  # left cut: remove() copes
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()
    assert ns.name not in [line.split()[0] for line in listed]


def connect_from(ns: NetworkNamespace, url: str) -> str:
    result = subprocess.run(ns.command([sys.executable, "-c", CONNECT, url]), capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
