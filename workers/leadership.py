"""Leader election for notifiers: a lease row that one holder renews.

It works on every database (no advisory-lock session to lose). A standby takes over
once the leader stops renewing for the lease length."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from orders import conf
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


def leader_problem(now=None) -> str:
    """'' if a notifier led recently, else why no one watches the workers.

    Recently: its lease ran out no longer than a worker timeout ago, which leaves a
    standby the time it needs to take over."""
    now = now or timezone.now()
    lease = current_leader()
    if lease is None or not lease[0]:
        return "no notifier leader has ever been seen: start manage.py notifier"
    holder, expires_at = lease
    silent = (now - expires_at).total_seconds()
    if silent > conf.get().worker_timeout:
        return (f"no notifier leader seen for {silent:.0f} s (the last was {holder}): "
                "dead workers are not being detected")
    return ""
