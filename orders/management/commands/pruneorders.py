from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from orders.compaction import rebuild_indexes

from orders.models import Order
from orders.services import prune_finished
from orders import conf
from orders.progress import progress_bar


class Command(BaseCommand):
    help = "Delete finished orders older than the retention period now (the notifier also does " \
           "this every minute), with a progress bar. Counters in /metrics keep what was pruned."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, default=None,
                            help="Seconds since finishing (default PIZZAQ_RETENTION)")
        parser.add_argument("--batch", type=int, default=5000, help="Orders per transaction (default 5000)")
        parser.add_argument("--reindex", action="store_true",
                            help="Then rebuild the order indexes concurrently (PostgreSQL), giving back the "
                                 "space a large prune leaves in them; placing and claiming go on meanwhile")

    def handle(self, *args, older_than, batch, reindex, **options):
        if (older_than is not None and older_than < 0) or batch < 1:
            raise CommandError("--older-than must be 0 or more and --batch 1 or more")
        if reindex and connection.vendor != "postgresql":
            raise CommandError("--reindex is for PostgreSQL; on SQLite run VACUUM to give space back")
        retention = conf.get().retention if older_than is None else older_than
        # The total is an estimate for the bar: orders keep finishing while we prune.
        total = Order.objects.finished().filter(finished_at__lt=timezone.now() - timedelta(seconds=retention)).count()
        with progress_bar() as bar:
            task = bar.add_task("pruning", total=total)
            pruned = prune_finished(retention, batch, on_batch=lambda n: bar.advance(task, n))
        self.stdout.write(f"pruned {pruned} finished orders older than {retention:g} s")
        if reindex:
            self.stdout.write("rebuilding the order indexes (concurrently) ...")
            before, after = rebuild_indexes()
            self.stdout.write(f"order indexes: {before / 2**20:.1f} MB before, {after / 2**20:.1f} MB after")
