"""pizzaq's client side, run with the project's own .venv and DATABASE_URL set.

    python -m bench.drivers pizzaq enqueue|enqueue-http|bulk|fill|paced|long|claims|prune|group|groups|batches --n N
"""

import http.client
import json
import os
import time
import urllib.parse

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzaq.settings")
import django  # noqa: E402

django.setup()

from orders import services  # noqa: E402 - place_group looked up when used: older pizzaq (--pizzaq-ref) has none
from orders.services import OrderSpec, place_order, place_orders  # noqa: E402

from bench.drivers.common import calls_of, emit, paced, timed, timed_calls  # noqa: E402

# A backlog is placed in slices of this many, so no one transaction holds a million rows.
BACKLOG_SLICE = 50_000


def enqueue(args) -> None:
    def place_each(n):
        for seq in range(n):
            place_order("noop", {"seq": seq})

    emit(seconds=timed(place_each, args.n))


def enqueue_http(args) -> None:
    """POST /api/orders one at a time over one keep-alive connection, as a client would."""
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json"}

    def post_each(n):
        for seq in range(n):
            conn.request("POST", "/api/orders", json.dumps({"kind": "noop", "payload": {"seq": seq}}), headers)
            response = conn.getresponse()
            response.read()
            if response.status != 202:
                raise RuntimeError(f"POST /api/orders answered {response.status}")

    emit(seconds=timed(post_each, args.n))


def bulk(args) -> None:
    calls = [[OrderSpec("noop", {"seq": seq}) for seq in seqs] for seqs in calls_of(args.n, args.per_call)]
    emit(seconds=timed(lambda: [place_orders(specs) for specs in calls]))


def fill(args) -> None:
    """Place ``n`` orders in slices: a scenario's setup, not a measurement."""
    for first in range(0, args.n, BACKLOG_SLICE):
        place_orders([OrderSpec("noop", {"seq": seq}) for seq in range(first, min(args.n, first + BACKLOG_SLICE))])
    emit(placed=args.n)


def paced_orders(args) -> None:
    emit(placed=paced(lambda seq: place_order("noop", {"seq": seq}), args.every_ms, args.seconds))


def long_order(args) -> None:
    order = place_order("bake", {"seconds": args.sleep, "seq": 0})
    emit(job=str(order.pk))


def claims(args) -> None:
    """Time ``n`` single claims by a registered worker, as its loop makes them (S6), then
    show the claim's plan (EXPLAIN ANALYZE) at this depth. Each claimed order is then
    completed (untimed), so it ends as a worker would leave it, and the worker leaves, so
    its buckets go back to the real workers."""
    from orders.claiming import Claim
    from orders.services import complete
    from workers.membership import deregister, register
    from workers.ownership import owned_by, still_alive

    worker = register("BENCH", 1)
    claim = Claim("BENCH", buckets=owned_by("BENCH"), alive=still_alive(worker))
    timings = []
    for _ in range(args.n):
        started = time.perf_counter()
        claimed = claim(1)
        timings.append((time.perf_counter() - started) * 1000)
        if not claimed:
            raise RuntimeError("the queue ran dry while timing claims")
        complete(claimed[0], "BENCH", claimed[0].attempt)
    # What a worker on its defaults claims at once: 4 threads, 4 orders held per thread.
    plan = claim.explain(16)
    deregister(worker, "claims timed")
    emit(timings_ms=timings, plan=plan)


def prune(args) -> None:
    """Prune every finished order, then rebuild the indexes (pruneorders --reindex)."""
    from orders.compaction import rebuild_indexes
    from orders.services import prune_finished

    pruned = prune_finished(older_than=0)
    before, after = rebuild_indexes()
    emit(pruned=pruned, index_bytes_before=before, index_bytes_after=after)


def noops(n: int) -> list[OrderSpec]:
    return [OrderSpec("noop", {"seq": seq}) for seq in range(n)]


# S9's groups: n no-op children and a no-op callback that waits for all of them, and says
# so in its payload.
CALLBACK = OrderSpec("noop", {"callback": True})


def group(args) -> None:
    """Place ``calls`` groups, one after the other, each call timed."""
    emit(seconds=timed_calls(lambda: noops(args.n), lambda children: services.place_group(children, then=CALLBACK),
                             args.calls))


def groups_one_by_one(args) -> None:
    """Place ``calls`` groups, each once the one before has run its callback, idle in
    between (a look every 0.1 s), so that this process's start and exit fall outside
    the runs measured."""
    from orders.models import Order, Status

    for _ in range(args.calls):
        callback = services.place_group(noops(args.n), then=CALLBACK).callback
        deadline = time.monotonic() + 60
        while not Order.objects.filter(pk=callback.pk, status=Status.DONE).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"callback {callback.pk} did not run within 60 s")
            time.sleep(0.1)
    emit(groups=args.calls)


def batches(args) -> None:
    """Place ``calls`` batches of n no-op orders (S9's baseline: the same rows, no waiting)."""
    emit(seconds=timed_calls(lambda: noops(args.n), place_orders, args.calls))


COMMANDS = {"enqueue": enqueue, "enqueue-http": enqueue_http, "bulk": bulk, "fill": fill,
            "paced": paced_orders, "long": long_order, "claims": claims, "prune": prune,
            "group": group, "groups": groups_one_by_one, "batches": batches}
