from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from orders.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for USER and print it (shown once; only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default", help="A label to recognise the token by")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}; create one with `manage.py createsuperuser`")
        _, key = create_token(user, name)
        self.stdout.write(key)
