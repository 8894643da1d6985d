"""Where pizzaq's time goes on the paths the scenarios measure: py-spy samples (wall
clock, idle time included, so waiting on PostgreSQL shows) of the S1 enqueue loop, the
S2 batch call, a worker draining S3's orders, and `manage.py serve` serving S1's HTTP orders;
plus PostgreSQL's own count of transactions per order.

    bench/.venv-peers/bin/python -m bench.run profile

Writes bench/results/profile.txt (the summary; raw samples go to results/profiles/)."""

import os
import re
import time
from collections import Counter
from pathlib import Path

from bench import harness
from bench.queues import Pizzaq
from bench.scenarios.s1_enqueue import accepts, free_port
from bench.scenarios.s3_drain import wait_until_finished

PY_SPY = harness.BENCH / ".venv-peers" / "bin" / "py-spy"
PROFILES = harness.RESULTS / "profiles"
SIZES = {"enqueue": 2_000, "bulk": 20_000, "drain": 20_000, "drain-tuned": 60_000, "http": 300}
TOP = 10
# Which threads each profile summarises, by the start of their names.
MAIN_THREAD = {"the one thread": ("MainThread",)}
WORKER_THREADS = {"main loop thread (claims orders)": ("MainThread",),
                  "order threads (run orders)": ("S0_",),
                  "result recorder (writes completions in batches)": ("S0-recorder",)}
WEB_THREADS = {"uvicorn's event loop": ("MainThread",),
               "request threads (Django, as WSGI)": ("ThreadPoolExecutor",)}
LINE_NUMBER = re.compile(r":\d+\)$")


def run(queues, options) -> dict:
    PROFILES.mkdir(parents=True, exist_ok=True)
    pizzaq = Pizzaq()
    sections = []
    with harness.scenario_databases("profile", pizzaq) as fresh:
        for name, profile in (("enqueue", client_profile("enqueue")), ("bulk", client_profile("bulk")),
                              ("drain", drain_profile(tuned=False)), ("drain-tuned", drain_profile(tuned=True)),
                              ("http", profile_http)):
            db = fresh()
            before = transactions(db)
            raw, thread_groups = profile(pizzaq, db, SIZES[name])
            per_order = (transactions(db) - before) / SIZES[name]
            sections.append(section(name, SIZES[name], raw, thread_groups, per_order))
            harness.log(f"profile {name}: done")
    text = "\n".join(sections)
    (harness.RESULTS / "profile.txt").write_text(text)
    print(text)
    return {"sizes": SIZES}


# --- the four profiled runs ------------------------------------------------------------


def spy(raw: Path, cmd: list) -> list:
    """``cmd`` run as py-spy's child (attaching to a running process is not allowed here)."""
    return [PY_SPY, "record", "--idle", "--threads", "--rate", "200", "--format", "raw", "--output", raw, "--", *cmd]


def client_profile(command: str):
    """Profile one pizzaq driver command (S1's enqueue loop, S2's batch call)."""

    def profile(pizzaq: Pizzaq, db: str, n: int):
        raw = PROFILES / f"{command}.txt"
        cmd = [pizzaq.python, "-m", "bench.drivers", "pizzaq", command, "--n", str(n)]
        harness.run_json(spy(raw, cmd), pizzaq.env(db), 600, cwd=pizzaq.source)
        return raw, MAIN_THREAD

    return profile


def drain_profile(tuned: bool):
    """One worker (on its defaults, or as S3 tunes each of its two) drains ``n`` orders;
    its main loop, order threads and recorder are summarised apart (not its heartbeat or
    LISTEN threads). Sampling starts with the process, so ``n`` is large enough for the
    drain, not the start-up, to fill the samples."""

    def profile(pizzaq: Pizzaq, db: str, n: int):
        raw = PROFILES / f"drain{'-tuned' if tuned else ''}.txt"
        pizzaq.drive(db, "fill", n=n)
        worker = harness.start(spy(raw, pizzaq.worker_command(0, tuned, False)), pizzaq.env(db), "profile-worker",
                               cwd=pizzaq.source)
        with harness.running(worker):
            wait_until_finished(pizzaq, db, n, 600, [worker])
            stop_spied_child(worker)
        return raw, WORKER_THREADS

    return profile


def profile_http(pizzaq: Pizzaq, db: str, n: int):
    raw = PROFILES / "http.txt"
    token = pizzaq.api_token(db)
    port = free_port()
    # One process serving in-process (as `make run` serves with one per core), so one
    # py-spy sees every request.
    web = harness.start(spy(raw, pizzaq.serve_command(port, 1)), pizzaq.env(db), "profile-web", cwd=pizzaq.source)
    with harness.running(web):
        harness.wait_for(lambda: accepts(port), timeout=60, interval=0.1, what="the web server to listen")
        pizzaq.drive(db, "enqueue-http", n=n, url=f"http://127.0.0.1:{port}", token=token)
        stop_spied_child(web)
    return raw, WEB_THREADS


def stop_spied_child(spy_process) -> None:
    """SIGTERM py-spy's child alone: py-spy then writes its samples and exits."""
    with open(f"/proc/{spy_process.pid}/task/{spy_process.pid}/children") as children:
        for pid in children.read().split():
            os.kill(int(pid), 15)
    spy_process.wait(60)


def transactions(db: str) -> int:
    # The statistics are flushed about once a second; wait for the last ones.
    time.sleep(1.5)
    return harness.scalar(db, "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                              "WHERE datname = current_database()")


# --- summarising py-spy's raw (collapsed) stacks ---------------------------------------


def load_stacks(raw: Path, threads: tuple) -> Counter:
    """{stack of frames: samples} of the threads whose names start with one of ``threads``."""
    stacks = Counter()
    for line in raw.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        thread, *frames = frames.split(";")
        if thread.split(": ", 1)[-1].startswith(threads):
            # "f (orders/api.py:55)" and "f (orders/api.py:61)" are one function.
            stacks[tuple(LINE_NUMBER.sub(")", frame) for frame in frames)] += int(count)
    return stacks


def category(frames: tuple) -> str:
    """What a sampled thread was doing, judged by its stack (the first rule that fits)."""
    leaf = frames[-1] if frames else ""
    if any("psycopg" in f and ("Connection.connect (" in f or "_connect_gen" in f) for f in frames):
        return "opening a PostgreSQL connection"
    if "psycopg" in leaf and "wait" in leaf.lower():
        return "waiting on PostgreSQL (a round trip)"
    if any(idle in leaf for idle in IDLE_LEAVES):
        return "idle (waiting for work, a wake-up or a lock)"
    return "running Python"


# Blocking calls made in C show their caller on top: the order threads' and the
# recorder's waits on a SimpleQueue.
IDLE_LEAVES = ("select (selectors", "Condition.wait", "Event.wait", "_worker (concurrent/futures/thread.py",
               "sleep", "_wait_for_tstate_lock", "notifies", "Lock.acquire", "Incarnation._serve (workers/incarnation.py",
               "Recorder._take_batch (workers/recorder.py")
# Our own code: time is charged to the innermost of these frames on the stack.
PROJECT = ("(orders/", "(workers/", "(pizzaq/")


def innermost_pizzaq_frame(frames: tuple) -> str:
    return next((f for f in reversed(frames) if any(p in f for p in PROJECT)), "(outside pizzaq's code)")


def section(name: str, n: int, raw: Path, thread_groups: dict, per_order: float) -> str:
    lines = [f"## {name}: {n:,} orders, {per_order:.1f} PostgreSQL transactions per order", ""]
    for label, threads in thread_groups.items():
        lines += thread_summary(label, load_stacks(raw, threads))
    return "\n".join(lines)


def thread_summary(label: str, stacks: Counter) -> list[str]:
    total = sum(stacks.values()) or 1
    kinds, charged, leaf = Counter(), Counter(), Counter()
    for frames, count in stacks.items():
        kinds[category(frames)] += count
        charged[innermost_pizzaq_frame(frames), category(frames)] += count
        leaf[frames[-1] if frames else "?"] += count
    lines = [f"### {label}: {total:,} samples", "", "doing:"]
    lines += [f"  {share(c, total)}  {kind}" for kind, c in kinds.most_common()]
    lines += ["", "by the innermost pizzaq function on the stack:"]
    lines += [f"  {share(c, total)}  {frame}: {kind}" for (frame, kind), c in charged.most_common(TOP)]
    lines += ["", "on top of the stack:"]
    lines += [f"  {share(c, total)}  {frame}" for frame, c in leaf.most_common(TOP // 2)]
    return lines + [""]


def share(count: int, total: int) -> str:
    return f"{100 * count / total:5.1f}%"
