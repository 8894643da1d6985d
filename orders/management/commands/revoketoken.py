from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from orders.models import ApiToken


class Command(BaseCommand):
    help = "Revoke API tokens by their prefix (as `listtokens` shows it)."

    def add_arguments(self, parser):
        parser.add_argument("prefix")

    def handle(self, *args, prefix, **options):
        tokens = ApiToken.objects.filter(prefix=prefix, revoked_at__isnull=True)
        if not tokens.exists():
            raise CommandError(f"no active token with prefix {prefix!r}")
        revoked = tokens.update(revoked_at=timezone.now())
        self.stdout.write(f"revoked {revoked} token(s) with prefix {prefix}")
