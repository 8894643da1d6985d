import getpass

from django.core.management.base import BaseCommand, CommandError

from workers.membership import force_fail


class Command(BaseCommand):
    help = "Force-fail a worker now: exactly what a detected death does. Its process is fenced off."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Worker name, e.g. S3")
        parser.add_argument("--actor", default=None, help="Who is doing this (default: the shell user)")

    def handle(self, *args, name, actor, **options):
        outcome = force_fail(name, actor or getpass.getuser())
        if not outcome:
            raise CommandError(outcome.message)
        self.stdout.write(outcome.message)
