"""Pausing and resuming a named queue. A paused queue's orders stay queued and are not
claimed; orders already running finish. The pause is a row, so it outlives every process."""

from django.db import transaction
from django.utils import timezone

from orders.models import Queue
from orders.notify import notify_after_commit
from orders.services import Outcome
from orders.specs import check_queue_name


def pause(name: str, actor: str) -> Outcome:
    """Stop claiming ``name``'s orders until it is resumed; OrderRejected for a name no
    queue can have."""
    check_queue_name(name)
    with transaction.atomic():
        queue, _ = Queue.objects.select_for_update().get_or_create(name=name)
        if queue.is_paused:
            return Outcome(False, f"queue {name} is already paused (by {queue.paused_by or 'someone'} "
                                  f"since {queue.paused_at:%Y-%m-%d %H:%M:%S} UTC)")
        queue.paused_at, queue.paused_by = timezone.now(), actor
        queue.save()
    return Outcome(True, f"queue {name} paused")


def resume(name: str, actor: str = "") -> Outcome:
    """Claim ``name``'s orders again; idle workers wake at once."""
    check_queue_name(name)
    with transaction.atomic():
        if not Queue.objects.filter(name=name, paused_at__isnull=False).update(paused_at=None, paused_by=""):
            return Outcome(False, f"queue {name} is not paused")
        notify_after_commit()
    return Outcome(True, f"queue {name} resumed")
