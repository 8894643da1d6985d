from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.tokens import create_token


class Command(BaseCommand):
    help = "Create an API token for USER and print it (shown once; only its hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="default", help="A label to recognise the token by")
        parser.add_argument("--expires-in-days", type=float, default=None, help="Expire after this many days")

    def handle(self, *args, username, name, expires_in_days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}; create one with `manage.py createsuperuser`")
        if expires_in_days is not None and expires_in_days <= 0:
            raise CommandError("--expires-in-days must be more than 0")
        expires_at = None if expires_in_days is None else timezone.now() + timedelta(days=expires_in_days)
        _, key = create_token(user, name, expires_at)
        self.stdout.write(key)
