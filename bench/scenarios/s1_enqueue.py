"""S1 enqueue: orders placed one call at a time from one process; orders per second.

pizzaq is measured twice: through ``place_order`` and through ``POST /api/orders``
served by `manage.py serve`, with a bearer token from ``manage.py createtoken``. The check: every
order is stored exactly once (as many rows as calls, each sequence number once)."""

import socket

from bench import harness
from bench.harness import BenchError, Variant
from bench.queues import Pizzaq

FIGURES = {"enqueue": ("orders/s", True)}


def run(queues, options) -> dict:
    n, over_http = options.enqueue, options.enqueue_http
    variants = [Variant(q.label, q, lambda db, q=q: enqueue(q, db, n), "one call per order") for q in queues]
    pizzaq = next((q for q in queues if q.name == "pizzaq"), None)
    if pizzaq:
        variants.append(Variant(f"pizzaq over HTTP (manage.py serve), {over_http:,} requests", pizzaq,
                                lambda db: enqueue_http(pizzaq, db, over_http), "HTTP API"))
    tables = harness.side_by_side("s1", variants, FIGURES, options.runs)
    harness.print_table(f"S1 enqueue: {n:,} orders, one call each", tables["enqueue"])
    return {"orders": n, "orders_over_http": over_http, "tables": harness.tables_json(tables)}


def enqueue(queue, db: str, n: int) -> dict:
    seconds = queue.drive(db, "enqueue", n=n)["seconds"]
    check_stored(queue, db, n)
    return {"enqueue": n / seconds}


def check_stored(queue, db: str, n: int) -> None:
    if problems := queue.stored_problems(db, n):
        raise BenchError("check failed: " + "; ".join(problems))


def enqueue_http(pizzaq: Pizzaq, db: str, n: int) -> dict:
    token = pizzaq.api_token(db)
    port = free_port()
    web = harness.start(pizzaq.serve_command(port), pizzaq.env(db), "pizzaq-web", cwd=pizzaq.source)
    with harness.running(web):
        harness.wait_for(lambda: accepts(port), timeout=30, interval=0.1, what="the web server to listen")
        seconds = pizzaq.drive(db, "enqueue-http", n=n, url=f"http://127.0.0.1:{port}", token=token)["seconds"]
    check_stored(pizzaq, db, n)
    return {"enqueue": n / seconds}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
