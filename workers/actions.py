"""What people do to the queue: force-fail a worker, retry, cancel or requeue an order,
pause or resume a named queue, fire, enable or disable a schedule.

One place for the dashboard's HTTP views, its websocket and the admin: each action checks
the same named permission, calls the same service, and is recorded as an Event naming who
did it, in the same transaction as the change."""

import uuid
from dataclasses import dataclass

from django.db import transaction

from orders import queues, schedules, services
from orders.specs import OrderRejected
from workers.events import record
from workers.membership import force_fail
from workers.models import EventKind

OPERATE = "orders.operate_queue"


@dataclass(frozen=True)
class ActionResult:
    status: int  # as HTTP would say it: 200, 403, 404, 409
    message: str

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def code(self) -> str:
        """The error code an API answer carries."""
        return {400: "invalid", 403: "forbidden", 404: "not_found", 409: "conflict"}.get(self.status, "ok")


ORDER_ACTIONS = {"retry": services.retry, "cancel": services.cancel, "requeue": services.requeue}
# What each action on a named thing changes: (the thing, the change taking its name and the actor).
NAMED_ACTIONS = {
    "pause": ("queue", queues.pause), "resume": ("queue", queues.resume),
    "fire": ("schedule", lambda name, actor: schedules.fire_now(name)),
    "enable": ("schedule", lambda name, actor: schedules.set_enabled(name, True)),
    "disable": ("schedule", lambda name, actor: schedules.set_enabled(name, False)),
}


def may_operate(user) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(OPERATE))


def perform(user, action: str, target: str) -> ActionResult:
    """Do ``action`` to ``target`` (a worker's, a queue's or a schedule's name, or an
    order id) as ``user``."""
    if not may_operate(user):
        return ActionResult(403, "you may watch the queue but not act on it")
    actor = user.get_username()
    if action == "force_fail":
        # force_fail writes its own FORCE_FAILED event naming the actor.
        outcome = force_fail(target, actor)
        return ActionResult(200 if outcome else 404 if outcome.message.startswith("no worker") else 409,
                            outcome.message)
    if action in NAMED_ACTIONS:
        return act_on(action, target, actor)
    if action not in ORDER_ACTIONS:
        return ActionResult(404, f"no action {action!r}")
    try:
        target = str(uuid.UUID(str(target)))
    except ValueError:
        return ActionResult(404, f"no order {target}")
    with transaction.atomic():
        outcome = ORDER_ACTIONS[action](target)
        if outcome:
            record(EventKind.ACTION, f"{actor}: {action} order {target}: {outcome.message}", actor=actor,
                   data={"action": action, "order": str(target)})
    if outcome:
        return ActionResult(200, outcome.message)
    return ActionResult(404 if outcome.message.startswith("no order") else 409, outcome.message)


def act_on(action: str, name: str, actor: str) -> ActionResult:
    """Do ``action`` to the queue or schedule ``name`` for ``actor``, recorded with the
    change. (The permission is the caller's to check: ``perform`` does, a management
    command need not.)"""
    subject, change = NAMED_ACTIONS[action]
    try:
        with transaction.atomic():
            outcome = change(name, actor)
            if outcome:
                record(EventKind.ACTION, f"{actor}: {outcome.message}", actor=actor,
                       data={"action": action, subject: name})
    except OrderRejected as rejected:
        return ActionResult(400, rejected.message)
    return ActionResult(200 if outcome else 404 if outcome.message.startswith("no ") else 409, outcome.message)
