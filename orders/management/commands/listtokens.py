from django.core.management.base import BaseCommand
from django.utils import timezone

from orders.models import ApiToken


def _state(token, now) -> str:
    if token.revoked_at:
        return "revoked"
    if token.expires_at and token.expires_at <= now:
        return "expired"
    return "active"


class Command(BaseCommand):
    help = "List API tokens (never their keys): prefix, owner, name, state, last use."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="Only this user's tokens")

    def handle(self, *args, username, **options):
        tokens = ApiToken.objects.select_related("user").order_by("created_at")
        if username:
            tokens = tokens.filter(user__username=username)
        now = timezone.now()
        self.stdout.write(f"{'PREFIX':<10} {'USER':<16} {'NAME':<20} {'STATE':<8} LAST USED")
        for token in tokens:
            last = token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else "never"
            self.stdout.write(f"{token.prefix:<10} {token.user.get_username():<16} {token.name:<20} "
                              f"{_state(token, now):<8} {last}")
