"""Production settings: `check --deploy` is clean, and the development key is refused."""

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, run_python

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "k3y-" + "x7Qm2pV9sL4tR8wZ1nB6cF0hJ5dG3aE" * 2,
    "ALLOWED_HOSTS": "queue.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://queue.example.com",
    "DATABASE_URL": "postgres://pizzaq@db.example.com:5432/pizzaq",
}


def manage(*args, **env):
    environment = {key: value for key, value in os.environ.items() if key not in ("DEBUG", "SECRET_KEY")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**environment, **env},
                          capture_output=True, text=True, timeout=60)


def test_check_deploy_reports_nothing_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", **PRODUCTION)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_development_secret_key_is_refused_in_production():
    without_key = {key: value for key, value in PRODUCTION.items() if key != "SECRET_KEY"}

    result = manage("check", **without_key)

    assert result.returncode != 0
    assert "SECRET_KEY is the development default" in result.stderr


POOLED_REQUESTS = """
import threading, django
django.setup()
from django.db import connection
pids = set()

def request():  # what a daphne request thread does with the database
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pids.add(cursor.fetchone()[0])
    connection.close()  # request_finished: back to the pool

for _ in range(20):
    thread = threading.Thread(target=request)
    thread.start()
    thread.join()
print(len(pids))
"""


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_pool_serves_request_threads_with_connections_already_open():
    def backends(**env) -> int:
        return int(run_python(POOLED_REQUESTS, **env))

    assert backends(DATABASE_POOL_SIZE="3") <= 3
    assert backends() > 10  # without it, each thread connects anew


SETTINGS_OF = """
import django
django.setup()
from django.conf import settings
database = settings.DATABASES["default"]
print({key: database["OPTIONS"].get(key) for key in ("connect_timeout", "tcp_user_timeout", "keepalives",
       "prepare_threshold")}, database["DISABLE_SERVER_SIDE_CURSORS"])
"""


def test_connections_give_up_on_a_silent_network_within_two_heartbeats():
    printed = run_python(SETTINGS_OF, DATABASE_URL="postgres://pizzaq@db.example.com/pizzaq",
                         PIZZAQ_HEARTBEAT_INTERVAL="3")
    assert printed.strip() == ("{'connect_timeout': 6, 'tcp_user_timeout': 6000, 'keepalives': 1, "
                               "'prepare_threshold': 0} False")


def test_behind_a_transaction_pooler_nothing_is_kept_across_transactions():
    printed = run_python(SETTINGS_OF, DATABASE_URL="postgres://pizzaq@db.example.com/pizzaq",
                         DATABASE_TRANSACTION_POOLER="true")
    assert printed.strip().endswith("'prepare_threshold': None} True")
