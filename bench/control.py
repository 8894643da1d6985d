"""S8 control (pizzaq only): the S3 drain with the queue controls configured, side by
side with the plain drain, so their cost on the hot path shows.

- plain: S3 as it is (no-op orders in the default queue, workers serving every queue);
- a limit on another kind: a Limit row caps a kind none of the drained orders has, so
  every claim leaves limited orders out and a limited claim runs every 0.1 s;
- 4 named queues: the orders take turns among queues q0..q3, and every worker runs
  with --queues q0,q1,q2,q3 (so each queue has a ring of its own).

One worker on its defaults and two tuned (S3's settings), interleaved round by round
(plain, limit, queues, plain, ...) on fresh databases; medians (min-max) and the ratio
to plain.

    bench/.venv-peers/bin/python -m bench.control [--runs 5] [--drain 10000]

Writes bench/results/s8-control.json."""

import argparse
import json
import statistics
import subprocess

from bench import harness
from bench.queues import Pizzaq
from bench.scenarios.s3_drain import wait_until_finished

QUEUES = ["q0", "q1", "q2", "q3"]
VARIANTS = {
    "plain": {"queues": [], "sql": None},
    "a limit on another kind": {
        "queues": [],
        "sql": "INSERT INTO orders_limit (scope, name, max_running, from_settings) VALUES ('kind', 'email', 2, false)",
    },
    "4 named queues": {"queues": QUEUES, "sql": None},
}
SETUPS = {"1 worker, defaults": (1, False), "2 workers, tuned": (2, True)}


def drain(pizzaq: Pizzaq, variant: dict, workers: int, tuned: bool, n: int, timeout: float) -> float:
    db = harness.create_database(f"{harness.DB_PREFIX}control")
    pizzaq.install(db)
    if variant["sql"]:
        harness.query(db, variant["sql"])
    queue_flags = [part for queue in variant["queues"] or ["default"] for part in ("--queue", queue)]
    pizzaq.manage(db, "placeorders", "noop", "--count", str(n), "--batch", "1000", *queue_flags)
    extra = ["--queues", ",".join(variant["queues"])] if variant["queues"] else []
    with harness.running() as started:
        for index in range(workers):
            command = pizzaq.worker_command(index, tuned, False) + extra
            started.append(harness.start(command, pizzaq.env(db), f"pizzaq-worker{index}", cwd=pizzaq.source))
        wait_until_finished(pizzaq, db, n, timeout, started)
    return n / pizzaq.drain_seconds(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--drain", type=int, default=10_000)
    parser.add_argument("--drain-timeout", type=float, default=240)
    args = parser.parse_args()
    pizzaq = Pizzaq()
    rates = {(setup, name): [] for setup in SETUPS for name in VARIANTS}
    for run in range(args.runs):
        for setup, (workers, tuned) in SETUPS.items():
            for name, variant in VARIANTS.items():
                rate = drain(pizzaq, variant, workers, tuned, args.drain, args.drain_timeout)
                rates[setup, name].append(rate)
                print(f"run {run + 1}/{args.runs} {setup}, {name}: {rate:,.0f} orders/s", flush=True)
    table = {}
    for setup in SETUPS:
        plain = statistics.median(rates[setup, "plain"])
        for name in VARIANTS:
            values = rates[setup, name]
            table[f"{setup}, {name}"] = {"median": statistics.median(values), "min": min(values), "max": max(values),
                                         "vs plain": statistics.median(values) / plain, "runs": values}
    print(f"\nS8 control: drain of {args.drain:,} no-op orders, medians of {args.runs}")
    for label, row in table.items():
        print(f"| {label} | {row['median']:,.0f} ({row['min']:,.0f}–{row['max']:,.0f}) orders/s | {row['vs plain']:.2f} |")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    (harness.RESULTS / "s8-control.json").write_text(json.dumps({"commit": commit, "orders": args.drain, "table": table},
                                                                indent=2) + "\n")


if __name__ == "__main__":
    main()
