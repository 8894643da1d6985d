"""The shape of ``pausequeue`` and ``resumequeue``: one queue, one action, an actor."""

import getpass

from django.core.management.base import BaseCommand, CommandError

from workers.actions import act_on


class QueueActionCommand(BaseCommand):
    action = ""  # "pause" or "resume"

    def add_arguments(self, parser):
        parser.add_argument("queue", help="Queue name, e.g. emails")
        parser.add_argument("--actor", default=None, help="Who is doing this (default: the shell user)")

    def handle(self, *args, queue, actor, **options):
        result = act_on(self.action, queue, actor or getpass.getuser())
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)
