import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from django.utils import timezone
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from orders.models import Status
from workers import leadership
from workers.models import Bucket
from workers.selectors import queue_summary, recent_events, worker_rows

RECENT_EVENTS = 10


class Command(BaseCommand):
    help = "Print the queue's state: orders by status, queue depth by priority, workers with " \
           "heartbeat age, the notifier leader and recent events. --watch refreshes it."

    def add_arguments(self, parser):
        parser.add_argument("--watch", action="store_true", help="Redraw until Ctrl-C")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between redraws (default 2)")

    def handle(self, *args, watch, interval, **options):
        if interval <= 0:
            raise CommandError("--interval must be more than 0")
        if not watch:
            console = Console(force_terminal=self.stdout.isatty(), width=120)
            with console.capture() as captured:
                console.print(queue_view())
            self.stdout.write(captured.get(), ending="")
            return
        with Live(queue_view(), auto_refresh=False, screen=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    # Each redraw is a fresh read; do not hold a connection the server may drop.
                    close_old_connections()
                    live.update(queue_view(), refresh=True)
            except KeyboardInterrupt:
                pass


def queue_view() -> Group:
    """The whole screen: one read of the database, drawn as tables."""
    now = timezone.now()
    owners = Bucket.objects.owners()
    summary = queue_summary()
    return Group(
        f"[bold]pizzaq[/bold] at {now:%Y-%m-%d %H:%M:%S} UTC   {leader_line(now)}",
        orders_table(summary),
        workers_table(worker_rows(now, owners)),
        events_table(recent_events(RECENT_EVENTS)),
    )


def leader_line(now) -> str:
    if problem := leadership.leader_problem(now):
        return f"[red]{problem}[/red]"
    return f"notifier leader: [bold]{leadership.current_leader()[0]}[/bold]"


def orders_table(summary: dict) -> Table:
    table = Table(title="Orders", title_justify="left")
    for status in Status.values:
        table.add_column(status, justify="right")
    table.add_column("queued by priority")
    depth = ", ".join(f"{priority}: {n}" for priority, n in summary["queued_by_priority"]) or "-"
    table.add_row(*(str(summary["by_status"][status]) for status in Status.values), depth)
    return table


def workers_table(workers: list[dict]) -> Table:
    table = Table(title="Workers", title_justify="left")
    for column in ("name", "status", "host", "pid", "heartbeat age", "running", "queued", "buckets", "done"):
        table.add_column(column, justify="right" if column not in ("name", "status", "host") else "left")
    for w in workers:
        age = f"{w['heartbeat_age']:.1f} s" if w["status"] in ("alive", "stopping") else "-"
        table.add_row(w["name"], w["status"], w["host"], str(w["pid"] or "-"), age, str(w["running"]),
                      str(w["queued"]), str(w["buckets"]), str(w["done"]))
    if not workers:
        table.add_row("no workers have joined", *[""] * 8)
    return table


def events_table(events: list[dict]) -> Table:
    table = Table(title="Recent events", title_justify="left")
    table.add_column("at")
    table.add_column("kind")
    table.add_column("message", overflow="fold")
    for event in events:
        table.add_row(event["at"][11:19], event["kind"], event["message"])
    return table
