"""The newcomer path: `make run`, place an order over HTTP, see it done, Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, wait_for
from tests.system.procs import alive, descendants, free_port

pytestmark = pytest.mark.system


def http(method: str, url: str, token: str | None = None, body: dict | None = None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except OSError:
        return None, None


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'run.sqlite3'}"}
    log = open(tmp_path / "make-run.log", "w")
    process = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    process.base_url, process.env, process.log_path = f"http://127.0.0.1:{port}", env, log.name
    yield process
    for pid in descendants(process.pid) | {process.pid}:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_make_run_serves_an_order_end_to_end_and_stops_cleanly_on_ctrl_c(make_run):
    wait_for(lambda: http("GET", make_run.base_url + "/api/orders")[0] == 401, timeout=90,
             interval=0.5, message="the web server of make run")
    token = subprocess.run([sys.executable, "manage.py", "createtoken", "admin"], cwd=ROOT, env=make_run.env,
                           check=True, capture_output=True, text=True).stdout.strip()
    output = open(make_run.log_path).read()
    assert "log in as admin / pizza" in output

    status, placed = http("POST", make_run.base_url + "/api/orders", token, {"kind": "bake", "payload": {"seconds": 0.2}})
    assert status == 202
    started = time.monotonic()
    wait_for(lambda: http("GET", make_run.base_url + placed["url"], token)[1]["status"] == "done",
             timeout=10, interval=0.2, message="the order to be done")
    assert time.monotonic() - started < 10

    family = descendants(make_run.pid)
    assert len(family) >= 5, "make, honcho, the web server and three workers should be running"
    os.killpg(make_run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does

    make_run.wait(30)
    wait_for(lambda: not any(alive(pid) for pid in family), timeout=15, message="every child to exit")
