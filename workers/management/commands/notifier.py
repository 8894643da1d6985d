from django.core.management.base import BaseCommand

from workers.contact import limit_server_waits
from workers.notifier import Notifier


class Command(BaseCommand):
    help = "Run a notifier: watches heartbeats, moves a dead worker's orders, expires and prunes. " \
           "Run several; one leads, the others stand by."

    def add_arguments(self, parser):
        parser.add_argument("--identity", default=None, help="Name in the leader lease (default host:pid)")

    def handle(self, *args, identity, **options):
        limit_server_waits()
        notifier = Notifier(identity)
        notifier.install_signal_handlers()
        notifier.run()
