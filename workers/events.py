"""Writing the audit trail. Call inside the transaction that makes the change, so an
event exists exactly when its change committed."""

import logging

from django.db import transaction

from workers.models import Event

log = logging.getLogger("pizzaq.events")


def record(kind: str, message: str, *, worker: str = "", actor: str = "", data: dict | None = None) -> Event:
    event = Event.objects.create(kind=kind, message=message, worker=worker, actor=actor, data=data or {})
    # The log, like the trail, tells only what committed.
    transaction.on_commit(lambda: log.info(message))
    return event
