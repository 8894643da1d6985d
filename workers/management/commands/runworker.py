import logging
import os
import sys

from django.core.management.base import BaseCommand, CommandError

from orders.specs import OrderRejected, check_queue_name
from workers.contact import limit_server_waits
from workers.membership import NameTaken
from workers.runner import Runner


class Command(BaseCommand):
    help = "Run a pizzaq worker (a shop) that claims and makes orders."

    def add_arguments(self, parser):
        parser.add_argument("--name", default="S0", help="Worker name, unique among live workers (default S0)")
        parser.add_argument("--concurrency", type=int, default=4, help="Orders run at once (default 4)")
        parser.add_argument("--queues", default="", help="Comma-separated queues to serve (default: every queue)")
        parser.add_argument("--prefetch", type=int, default=None,
                            help="Orders claimed ahead of free threads, so one claim serves many "
                                 "(default: 3 x --concurrency; 0 claims only for free threads)")
        parser.add_argument("--grace", type=float, default=None,
                            help="Seconds to let running orders finish on SIGTERM (default PIZZAQ_SHUTDOWN_GRACE)")
        parser.add_argument("--rejoin-delay", type=float, default=None,
                            help="Seconds to wait, once declared dead, before joining again as a new "
                                 "incarnation (default PIZZAQ_REJOIN_DELAY)")
        parser.add_argument("--exit-when-fenced", action="store_true",
                            help="Exit with code 3 once declared dead instead of rejoining, for "
                                 "supervisors that restart processes themselves")

    def handle(self, *args, name, concurrency, queues, prefetch, grace, rejoin_delay, exit_when_fenced, **options):
        queues = [queue.strip() for queue in queues.split(",") if queue.strip()]
        for queue in queues:
            try:
                check_queue_name(queue)
            except OrderRejected as rejected:
                raise CommandError(f"--queues: {rejected.message}") from None
        if concurrency < 1:
            raise CommandError("--concurrency must be 1 or more")
        if prefetch is not None and prefetch < 0:
            raise CommandError("--prefetch must be 0 or more")
        if rejoin_delay is not None and rejoin_delay < 0:
            raise CommandError("--rejoin-delay must be 0 or more")
        limit_server_waits()
        runner = Runner(name, concurrency, grace, prefetch, exit_when_fenced=exit_when_fenced,
                        rejoin_delay=rejoin_delay, queues=queues)
        runner.install_signal_handlers()
        try:
            code = runner.run()
        except NameTaken as error:
            raise CommandError(str(error)) from None
        if runner.abandoned:
            # Runs left behind (fenced off, or past the grace period) would be refused:
            # do not wait for their threads.
            logging.shutdown()
            os._exit(code)
        sys.exit(code)
