import sys

from django.core.management.base import BaseCommand, CommandError

from workers.membership import NameTaken
from workers.runner import Runner


class Command(BaseCommand):
    help = "Run a pizzaq worker (a shop) that claims and makes orders."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="S0", help="Worker name, unique among live workers (default S0)")
        parser.add_argument("--concurrency", type=int, default=4, help="Orders run at once (default 4)")
        parser.add_argument("--prefetch", type=int, default=None,
                            help="Orders claimed ahead of free threads, so one claim serves many "
                                 "(default: 3 x --concurrency; 0 claims only for free threads)")
        parser.add_argument("--grace", type=float, default=None,
                            help="Seconds to let running orders finish on SIGTERM (default PIZZAQ_SHUTDOWN_GRACE)")

    def handle(self, *args, name, concurrency, prefetch, grace, **options):
        if concurrency < 1:
            raise CommandError("--concurrency must be 1 or more")
        if prefetch is not None and prefetch < 0:
            raise CommandError("--prefetch must be 0 or more")
        runner = Runner(name, concurrency, grace, prefetch)
        runner.install_signal_handlers()
        try:
            code = runner.run()
        except NameTaken as error:
            raise CommandError(str(error)) from None
        sys.exit(code)
