import json

from django.core.management.base import BaseCommand, CommandError

from orders.models import DEFAULT_QUEUE
from orders.services import OrderRejected, OrderSpec, place_orders
from orders.progress import progress_bar


class Command(BaseCommand):
    help = "Place many orders of one kind, a batch per transaction, with a progress bar."

    def add_arguments(self, parser):
        parser.add_argument("kind", help="Order kind, e.g. noop or bake")
        parser.add_argument("--count", type=int, default=1, help="How many orders (default 1)")
        parser.add_argument("--payload", default="{}", help="JSON object given to every order (default {})")
        parser.add_argument("--priority", type=int, default=0, help="-100..100, higher first (default 0)")
        parser.add_argument("--queue", action="append", default=None,
                            help="Queue to place into (default: default); given more than once, the orders "
                                 "take turns among them")
        parser.add_argument("--batch", type=int, default=1000, help="Orders per transaction (default 1000)")

    def handle(self, *args, kind, count, payload, priority, queue, batch, **options):
        queues = queue or [DEFAULT_QUEUE]
        if count < 1 or batch < 1:
            raise CommandError("--count and --batch must be 1 or more")
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as error:
            raise CommandError(f"--payload is not JSON: {error}") from None
        placed = 0
        with progress_bar() as bar:
            task = bar.add_task(f"placing {kind}", total=count)
            while placed < count:
                size = min(batch, count - placed)
                try:
                    place_orders([OrderSpec(kind, payload, priority=priority, queue=queues[(placed + n) % len(queues)])
                                  for n in range(size)])
                except OrderRejected as error:
                    # Every order is alike: the first batch is refused whole, so nothing was written.
                    raise CommandError(f"{error.field or 'order'}: {error.message}") from None
                placed += size
                bar.advance(task, size)
        self.stdout.write(f"placed {placed} {kind} orders")
