import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "pizza"


class Command(BaseCommand):
    help = "Create the demo staff login (admin / pizza) if it does not exist, and say where to go."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PIZZAQ_WEB_PORT', '8000')}/")

    def handle(self, *args, url, **options):
        users = get_user_model().objects
        if not users.filter(username=DEMO_USERNAME).exists():
            users.create_superuser(DEMO_USERNAME, "admin@example.com", DEMO_PASSWORD)
            self.stdout.write(f"Created the demo staff login {DEMO_USERNAME} / {DEMO_PASSWORD}.")
        self.stdout.write(
            f"\n  pizzaq is starting. Open {url} and log in as {DEMO_USERNAME} / {DEMO_PASSWORD}.\n"
            f"  API token:  .venv/bin/python manage.py createtoken {DEMO_USERNAME}\n"
            "  Stop everything with Ctrl-C.\n"
        )
