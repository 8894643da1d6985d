"""S10 HTTP placing: orders placed one request each through the JSON API, as `make run`
serves it (``manage.py serve``), while the demo's three workers drain them; 1 and 16
keep-alive clients for --seconds each. Side by side, the ceiling: a minimal ASGI endpoint
that places the same row on a pooled async connection, on the same server with as many
processes (bench/ceiling_app.py). The check: every accepted order is stored, no request
failed. pizzaq only (the peers have no HTTP API of their own)."""

import os

from bench import harness, http_load
from bench.harness import BenchError, Variant
from bench.queues import Pizzaq
from bench.scenarios.s1_enqueue import accepts, free_port

FIGURES = {"rate": ("orders/s", True), "p50": ("ms", False), "p99": ("ms", False)}
CLIENTS = (1, 16)
WARM_UP_SECONDS = 1.0
PROCESSES = os.cpu_count() or 1
ORDER = {"kind": "noop", "payload": {"pizza": "margherita"}, "priority": 0}
# As the Procfile starts them: three shops of two threads, at the default log level.
DEMO_WORKERS = 3


def run(queues, options) -> dict:
    pizzaq = Pizzaq()
    variants = []
    for clients in CLIENTS:
        group = _group(clients)
        variants.append(Variant(f"pizzaq API (manage.py serve, {PROCESSES} processes), {group}", pizzaq,
                                lambda db, c=clients: place_over_http(pizzaq, db, c, options, ceiling=False), group))
        variants.append(Variant(f"ceiling: minimal ASGI insert ({PROCESSES} processes), {group}", pizzaq,
                                lambda db, c=clients: place_over_http(pizzaq, db, c, options, ceiling=True), group))
    tables = harness.side_by_side("s10", variants, FIGURES, options.runs)
    for name, title in (("rate", "orders/s"), ("p50", "latency p50"), ("p99", "latency p99")):
        harness.print_table(f"S10 HTTP placing, {title}, for {options.seconds:g} s while 3 workers drain",
                            tables[name])
    for clients in CLIENTS:
        pizzaq_rate, ceiling_rate = (series.median for variant, series in tables["rate"]
                                     if variant.group == _group(clients))
        if pizzaq_rate and ceiling_rate:
            print(f"{clients} client(s): pizzaq places at {pizzaq_rate / ceiling_rate:.2f}x the ceiling's rate")
    return {"processes": PROCESSES, "seconds": options.seconds, "tables": harness.tables_json(tables)}


def _group(clients: int) -> str:
    return f"{clients} client{'s' if clients > 1 else ''}"


def _server(pizzaq: Pizzaq, db: str, port: int, ceiling: bool):
    env = pizzaq.env(db, PIZZAQ_LOG_LEVEL="INFO")
    if ceiling:
        command = [pizzaq.python.parent / "uvicorn", "bench.ceiling_app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(PROCESSES), "--lifespan", "off", "--no-access-log",
                   "--http", "httptools", "--loop", "uvloop"]
        return harness.start(command, env, "s10-ceiling", cwd=harness.ROOT)
    return harness.start(pizzaq.serve_command(port, PROCESSES), env, "s10-serve", cwd=pizzaq.source)


def _workers(pizzaq: Pizzaq, db: str) -> list:
    env = pizzaq.env(db, PIZZAQ_LOG_LEVEL="INFO")
    return [harness.start([pizzaq.python, "manage.py", "runworker", "--name", f"S{index}", "--concurrency", "2"],
                          env, f"s10-worker{index}", cwd=pizzaq.source) for index in range(DEMO_WORKERS)]


def place_over_http(pizzaq: Pizzaq, db: str, clients: int, options, ceiling: bool) -> dict:
    token = pizzaq.api_token(db)
    port = free_port()
    with harness.running(_server(pizzaq, db, port, ceiling), *_workers(pizzaq, db)):
        harness.wait_for(lambda: accepts(port), timeout=60, interval=0.1, what="the web server to listen")
        for index in range(DEMO_WORKERS):
            pizzaq.wait_ready(db, index)
        warm = http_load.run("127.0.0.1", port, "/api/orders", ORDER, token, clients, WARM_UP_SECONDS)
        load = http_load.run("127.0.0.1", port, "/api/orders", ORDER, token, clients, options.seconds)
    _check(pizzaq, db, warm, load)
    return {"rate": load.rate, "p50": harness.percentile(load.latencies_ms, 0.50),
            "p99": harness.percentile(load.latencies_ms, 0.99)}


def _check(pizzaq: Pizzaq, db: str, *loads) -> None:
    statuses = {}
    for load in loads:
        for status, count in load.statuses.items():
            statuses[status] = statuses.get(status, 0) + count
    if set(statuses) != {202}:
        raise BenchError(f"check failed: responses {statuses}, all should be 202")
    stored = harness.scalar(db, "SELECT count(*) FROM orders_order")
    if stored != statuses[202]:
        raise BenchError(f"check failed: {statuses[202]:,} orders accepted, {stored:,} stored")
