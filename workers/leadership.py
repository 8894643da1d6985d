"""Leader election for notifiers: a lease row that one holder renews.

It works on every database (no advisory-lock session to lose). A standby takes over
once the leader stops renewing for the lease length."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from workers.models import NotifierLease

LEASE_ROW = 1


def hold_or_take(identity: str, lease_seconds: float) -> bool:
    """Renew our lease, or take it if it lapsed; True while we lead."""
    now = timezone.now()
    NotifierLease.objects.get_or_create(pk=LEASE_ROW, defaults={"expires_at": now})
    mine_or_free = Q(holder=identity) | Q(expires_at__lte=now)
    return bool(
        NotifierLease.objects.filter(mine_or_free, pk=LEASE_ROW).update(
            holder=identity, expires_at=now + timedelta(seconds=lease_seconds)
        )
    )


def give_up(identity: str) -> None:
    """Let a standby take over at once (a clean stop)."""
    NotifierLease.objects.filter(pk=LEASE_ROW, holder=identity).update(expires_at=timezone.now())


def current_leader():
    """(holder, expires_at) of the lease, or None if no notifier ever ran."""
    return NotifierLease.objects.filter(pk=LEASE_ROW).values_list("holder", "expires_at").first()
