"""S9 workflows: a group of children and a callback that runs once they are all done
(fan-out, fan-in), pizzaq's place_group against Celery's chord on Redis.

- placing: ms per call placing 1,000 no-op children and a callback, and, as the
  baseline cost of the same rows, 1,001 plain jobs in one batch call (pizzaq's
  place_orders, Celery's group.apply_async()); children/s counts the 1,000 children
  in both, so the two rows compare call for call;
- release: one idle worker on its defaults (pizzaq's with a notifier, as deployed); one
  client process places a group of N no-op children and a no-op callback, and the next
  one once that callback has run; the time from the last child's finish to the
  callback's handler start, as the queue (or, for Celery, the tasks themselves) recorded
  them.

The check: every child ran once, the callback ran exactly once, after the last child
finished, and (Celery) got every child's result. A run whose check fails gives no figure.

    bench/.venv-peers/bin/python -m bench.workflows [--runs 5] [--children 1000]
        [--release-sizes 100,1000] [--groups 5] [--pizzaq-ref REF]

Writes bench/results/s9-workflows.json."""

import argparse
import statistics
import time

from bench import harness
from bench.harness import BenchError, Variant
from bench.queues import Celery, Pizzaq

PLACING = {"ms": ("ms per call", False), "children/s": ("children/s", True)}
RELEASE = {"p50": ("ms", False), "max": ("ms", False)}
# Placing calls per run, in one process; the first is left out: it opens the connection
# and fills the caches, as a long-running process does once.
CALLS = 6
# Every database of this scenario is named pizzaq_bench_wf_*.
DATABASES = "wf"
WAIT = 60.0


class CeleryChords(Celery):
    """Celery's chords: an app of their own, with the result backend a chord needs."""

    name = "celery_chord"
    label = "celery chord (redis, acks late)"
    APP = "bench.drivers.celery_chord_driver"


# --- placing ---------------------------------------------------------------------------


def placing(queue, command: str, n: int, children: int):
    def measure(db: str) -> dict:
        seconds = statistics.median(queue.drive(db, command, n=n, calls=CALLS)["seconds"][1:])
        return {"ms": seconds * 1000, "children/s": children / seconds}

    return measure


def placing_variants(pizzaq, chords, n: int) -> list[Variant]:
    fan_in, plain = f"{n:,} children + a callback", f"{n + 1:,} jobs, no callback (baseline)"
    return [
        Variant("pizzaq: place_group(children, then=callback)", pizzaq, placing(pizzaq, "group", n, n), fan_in),
        Variant("celery: chord(group(children), callback).apply_async()", chords,
                placing(chords, "chord", n, n), fan_in),
        Variant(f"pizzaq: place_orders({n + 1:,} specs)", pizzaq, placing(pizzaq, "batches", n + 1, n), plain),
        Variant(f"celery: group({n + 1:,} signatures).apply_async()", chords,
                placing(chords, "group", n + 1, n), plain),
    ]


# --- release: last child finished -> callback's handler started -------------------------


def figures(releases_ms: list[float]) -> dict:
    return {"p50": harness.percentile(releases_ms, 0.5), "max": max(releases_ms)}


def checked(problems: list[str]) -> None:
    if problems:
        raise BenchError("check failed: " + "; ".join(problems))


def pizzaq_release(pizzaq: Pizzaq, n: int, groups: int):
    def measure(db: str) -> dict:
        with harness.running(pizzaq.start_worker(db, 0, tuned=False), pizzaq.notifier(db)):
            pizzaq.wait_ready(db, 0)
            pizzaq.drive(db, "groups", n=n, calls=groups, timeout=groups * WAIT)
        return figures(pizzaq_releases(db, n, groups))

    return measure


# Per callback, from pizzaq's own records: its children through the Dependency rows, the
# last one's finish (its handler's return) and the callback's handler start. (Not its
# claim: the claim's time is read before the claim statement, by up to a query's length,
# so it may precede the commit that released the callback.)
RELEASES = """
    SELECT extract(epoch FROM c.started_at - max(ch.finished_at))::float8 * 1000,
           count(*), count(*) FILTER (WHERE ch.status = 'done' AND ch.attempt = 1
                                        AND jsonb_array_length(ch.history) = 1),
           c.status = 'done' AND c.attempt = 1 AND jsonb_array_length(c.history) = 1
      FROM orders_order c JOIN orders_dependency d ON d.waiting_id = c.id JOIN orders_order ch ON ch.id = d.on_id
     WHERE c.payload ? 'callback' GROUP BY c.id"""


def pizzaq_releases(db: str, n: int, groups: int) -> list[float]:
    rows = harness.query(db, RELEASES)
    total = harness.scalar(db, "SELECT count(*) FROM orders_order")
    problems = [] if len(rows) == groups else [f"{len(rows)} callbacks, not {groups}"]
    problems += [] if total == groups * (n + 1) else [f"{total} orders, not {groups * (n + 1)}"]
    for release, children, once, callback_once in rows:
        problems += [] if children == once == n else [f"{once} of {children} children ran once, not {n}"]
        problems += [] if callback_once else ["a callback did not run exactly once"]
        problems += [] if release > 0 else [f"a callback started {-release:.1f} ms before its last child finished"]
    checked(problems)
    return [row[0] for row in rows]


def celery_release(chords: CeleryChords, n: int, groups: int):
    def measure(db: str) -> dict:
        with harness.running(chords.start_worker(db, 0, tuned=False)):
            chords.wait_ready(db, 0)
            chords.drive(db, "chords", n=n, calls=groups, timeout=groups * WAIT)
        # Every task, children and callbacks, ran once; nothing is left queued or unacked.
        checked(chords.ran_once_problems(db, groups * (n + 1)))
        return figures([celery_release_ms(chords, k, n) for k in range(groups)])

    return measure


def celery_release_ms(chords: CeleryChords, k: int, n: int) -> float:
    """Chord k's release, from what its tasks noted, checked."""
    r = chords.redis()
    last_finish = max((float(t) for t in r.hvals(f"bench:finished:{k}")), default=float("inf"))
    began, results = (float(v or "nan") for v in r.hmget(f"bench:callback:{k}", "began", "results"))
    problems = [] if results == n else [f"chord {k}'s callback got {results:.0f} results, not {n}"]
    problems += [] if began > last_finish else [f"chord {k}'s callback began before its last child finished"]
    checked(problems)
    return (began - last_finish) * 1000


def release_variants(pizzaq, chords, sizes: list[int], groups: int) -> list[Variant]:
    variants = []
    for n in sizes:
        # Labels name the size too: a run's figures are kept by label.
        variants += [
            Variant(f"pizzaq, {n:,} children: {pizzaq.default_worker} + notifier", pizzaq,
                    pizzaq_release(pizzaq, n, groups), f"{n:,} children"),
            Variant(f"celery chord, {n:,} children: {chords.default_worker}", chords,
                    celery_release(chords, n, groups), f"{n:,} children"),
        ]
    return variants


# --- the command -----------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--children", type=int, default=1000, help="placing: children per group")
    parser.add_argument("--release-sizes", default="100,1000", help="release: children per group, comma-separated")
    parser.add_argument("--groups", type=int, default=5, help="release: groups per run, one after the other")
    parser.add_argument("--pizzaq-ref", default="", help="measure pizzaq as committed at this git ref")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.pizzaq_ref:
        harness.snapshot(args.pizzaq_ref)
    pizzaq, chords, started = Pizzaq(), CeleryChords(), time.monotonic()
    sizes = [int(size) for size in args.release_sizes.split(",")]
    placed = harness.side_by_side(DATABASES, placing_variants(pizzaq, chords, args.children), PLACING, args.runs)
    released = harness.side_by_side(DATABASES, release_variants(pizzaq, chords, sizes, args.groups), RELEASE,
                                    args.runs)
    print_tables(args, placed, released)
    path = harness.write_results("s9-workflows", {
        "scenario": "s9", "options": vars(args), "versions": harness.versions(),
        "elapsed_s": time.monotonic() - started, "calls_per_run": CALLS,
        "placing": harness.tables_json(placed), "release": harness.tables_json(released)})
    harness.log(f"wrote {path}")


def print_tables(args, placed: dict, released: dict) -> None:
    group, release = f"S9 placing a group of {args.children:,}", "S9 release, last child finished → callback started"
    harness.print_table(f"{group}: ms per call", placed["ms"])
    harness.print_table(f"{group}: children/s", placed["children/s"])
    harness.print_table(f"{release}: p50 of {args.groups} groups a run", released["p50"])
    harness.print_table(f"{release}: highest of {args.groups} groups a run", released["max"])


if __name__ == "__main__":
    main()
