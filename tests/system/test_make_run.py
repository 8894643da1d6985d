"""The newcomer path: `make run`, place an order over HTTP, see it done, Ctrl-C."""

from http.cookiejar import CookieJar
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from orders.routing import bucket_for
from orders.conf import PizzaqConf
from tests.conftest import ROOT, wait_for
from tests.system.procs import alive, descendants, free_port

pytestmark = pytest.mark.system


def http(method: str, url: str, token: str | None = None, body: dict | None = None, opener=None, headers=None):
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=5) as response:
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
    process.database = tmp_path / "run.sqlite3"
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


class StaffBrowser:
    """What a person's browser does: log in to the dashboard, then press its buttons."""

    def __init__(self, base_url: str):
        self.base_url, self.cookies = base_url, CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def cookie(self, name: str) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == name)

    def log_in(self, username: str, password: str) -> None:
        self.opener.open(self.base_url + "/admin/login/", timeout=5).read()
        form = urllib.parse.urlencode({"username": username, "password": password, "next": "/",
                                       "csrfmiddlewaretoken": self.cookie("csrftoken")}).encode()
        with self.opener.open(self.base_url + "/admin/login/?next=/", form, timeout=5) as page:
            assert page.url == self.base_url + "/", "logged in, the dashboard opens"

    def press(self, path: str):
        return http("POST", self.base_url + path, opener=self.opener, headers={"X-CSRFToken": self.cookie("csrftoken")})


def query(database, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute(sql, params).fetchall()


def key_owned_by(database, worker: str, avoid=()) -> str:
    mine = {number for (number,) in query(database, "SELECT number FROM workers_bucket WHERE owner = ?", worker)}
    return next(key for key in (f"customer-{n}" for n in range(100_000))
                if key not in avoid and bucket_for(key, PizzaqConf.buckets) in mine)


def test_force_failing_a_shop_under_make_run_moves_its_orders_and_it_reopens_while_all_else_runs(make_run):
    wait_for(lambda: http("GET", make_run.base_url + "/api/orders")[0] == 401, timeout=90,
             interval=0.5, message="the web server of make run")
    token = subprocess.run([sys.executable, "manage.py", "createtoken", "admin"], cwd=ROOT, env=make_run.env,
                           check=True, capture_output=True, text=True).stdout.strip()
    wait_for(lambda: query(make_run.database, "SELECT count(*) FROM workers_worker WHERE status = 'alive'") == [(3,)],
             timeout=30, message="the three shops to open")
    staff = StaffBrowser(make_run.base_url)
    staff.log_in("admin", "pizza")
    first = key_owned_by(make_run.database, "S1")
    keys = [first, key_owned_by(make_run.database, "S1", avoid={first})]
    placed = [http("POST", make_run.base_url + "/api/orders", token,
                   {"kind": "bake", "payload": {"seconds": 4}, "routing_key": key})[1] for key in keys]
    order_of = lambda order: http("GET", make_run.base_url + order["url"], token)[1]  # noqa: E731
    wait_for(lambda: all((order_of(o)["status"], order_of(o)["worker"]) == ("running", "S1") for o in placed),
             timeout=15, message="S1 to bake both")
    family = descendants(make_run.pid)

    status, answer = staff.press("/dashboard/workers/S1/fail")
    failed_at = time.monotonic()
    assert status == 200, answer

    settings = PizzaqConf()
    wait_for(lambda: query(make_run.database, "SELECT status, incarnation FROM workers_worker WHERE name = 'S1'")
             == [("alive", 2)], timeout=30, interval=0.1, message="S1 to reopen as incarnation 2")
    reopened_after = time.monotonic() - failed_at
    wait_for(lambda: all(order_of(o)["status"] == "done" for o in placed), timeout=30, message="both pizzas")
    for order in map(order_of, placed):
        assert order["worker"] in ("S0", "S2"), "S1's running orders moved to the shops the ring picked"
        assert [(h["worker"], h["outcome"]) for h in order["history"]] == [("S1", "requeued"), (order["worker"], "done")]
    assert all(alive(pid) for pid in family), "the web server, the notifier and every shop kept running"
    trail = query(make_run.database, "SELECT kind, message FROM workers_event WHERE worker = 'S1' ORDER BY id")
    assert [kind for kind, _ in trail][-2:] == ["force_failed", "joined"]
    assert "S1 force-failed by admin: declared dead; 2 running orders requeued" in trail[-2][1]
    assert "S1 joined (incarnation 2" in trail[-1][1] and "took 0 buckets" not in trail[-1][1]
    # It learns of its death at its next heartbeat, then waits out its back-off.
    assert reopened_after <= settings.rejoin_delay + settings.heartbeat_interval + 2.0
