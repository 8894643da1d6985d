"""Run the benchmark scenarios, pizzaq and its peers side by side; print each scenario's
table and write bench/results/SCENARIO.json.

    bench/.venv-peers/bin/python -m bench.run all|s1|s2|s3|s4|s5|s6|s10|profile [options]

``all`` is S1-S5; S6 (a deep backlog, pizzaq only) is slow and runs on its own, as does
S10 (HTTP placing, pizzaq against a minimal endpoint). The
default sizes keep ``all`` near 20 minutes on a 2-core machine; --issue-sizes uses the
issue's (10,000 / 100,000 / 20,000 / 1,000,000), several times longer.
Run bench/setup_peers.sh first; see bench/README.md."""

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench import harness, queues

SCENARIOS = {
    "s1": "bench.scenarios.s1_enqueue",
    "s2": "bench.scenarios.s2_bulk",
    "s3": "bench.scenarios.s3_drain",
    "s4": "bench.scenarios.s4_latency",
    "s5": "bench.scenarios.s5_recovery",
    "s6": "bench.scenarios.s6_backlog",
    "s10": "bench.scenarios.s10_http",
    "profile": "bench.profile",
}
ALL = ["s1", "s2", "s3", "s4", "s5"]
# enqueue, enqueue over HTTP, bulk, drain, backlog
ISSUE_SIZES = (10_000, 10_000, 100_000, 20_000, 1_000_000)


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="+", choices=[*SCENARIOS, "all"])
    p.add_argument("--runs", type=int, default=3, help="Runs of each measurement (median and spread)")
    p.add_argument("--pizzaq-ref", default="", help="Measure pizzaq as committed at this git ref "
                   "(default: the working tree as it is)")
    p.add_argument("--queues", default="", help="Comma-separated subset of: " + ", ".join(q.name for q in queues.ALL))
    p.add_argument("--issue-sizes", action="store_true", help="The issue's sizes instead of the defaults below")
    p.add_argument("--enqueue", type=int, default=5_000, help="S1: orders placed one call each")
    p.add_argument("--enqueue-http", type=int, default=1_000, help="S1: orders placed over HTTP, one request each")
    p.add_argument("--bulk", type=int, default=20_000, help="S2: orders placed, in calls of each size and in one")
    p.add_argument("--bulk-per-call", type=lambda text: [int(size) for size in text.split(",")],
                   default=[10, 100, 1_000], help="S2: the sizes of the calls, comma-separated")
    p.add_argument("--drain", type=int, default=3_000, help="S3: queued orders to drain (other sizes than "
                   "3,000 write results/s3-SIZE.json)")
    p.add_argument("--drain-timeout", type=float, default=240, help="S3/S6: give up on a drain after this long (s)")
    p.add_argument("--every-ms", type=float, default=20, help="S4: one order every this many ms")
    p.add_argument("--seconds", type=float, default=10, help="S4, S10: for this many seconds")
    p.add_argument("--recovery-wait", type=float, default=40, help="S5: bounded wait for a job to run again (s)")
    p.add_argument("--backlog", type=int, default=100_000, help="S6: the deep backlog (the issue's figure: 1000000)")
    p.add_argument("--backlog-sample", type=int, default=5_000, help="S6: orders drained to measure the rate")
    args = p.parse_args()
    if args.issue_sizes:
        args.enqueue, args.enqueue_http, args.bulk, args.drain, args.backlog = ISSUE_SIZES
    if "all" in args.scenarios:
        args.scenarios = ALL + [s for s in args.scenarios if s not in ALL and s != "all"]
    return args


def main() -> None:
    if Path(sys.prefix).resolve() != (harness.BENCH / ".venv-peers").resolve():
        sys.exit("run me with bench/.venv-peers/bin/python (make it with bench/setup_peers.sh)")
    args = arguments()
    selected = queues.select([name for name in args.queues.split(",") if name])
    if args.pizzaq_ref:
        harness.snapshot(args.pizzaq_ref)
    versions = harness.versions()
    harness.log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for name in args.scenarios:
        started = time.monotonic()
        scenario = importlib.import_module(SCENARIOS[name])
        results = scenario.run(selected, args)
        elapsed = time.monotonic() - started
        # A scenario whose size changes what it measures names its file after the size.
        file_name = scenario.results_name(args) if hasattr(scenario, "results_name") else name
        path = harness.write_results(file_name, {"scenario": name, "options": vars(args), "versions": versions,
                                                 "elapsed_s": round(elapsed), **results})
        harness.log(f"{name}: {elapsed:.0f} s; results in {path.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
