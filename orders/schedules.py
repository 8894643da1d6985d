"""Periodic orders: each slot of a schedule is placed once, by the leading notifier.

Exactly once: a schedule's due slots are placed under its row lock, each with a
ScheduleSlot row whose unique (schedule, slot) pair refuses a second copy in the same
transaction as the order. A stale leader that wakes up, a second notifier or a restart
so finds the slot settled, or taken.

Never a pile: slots are owed only while some notifier was there to place them. A
notifier is *present* (as leader or standby) from the moment it reaches the database
until it goes without an answer for longer than a worker timeout; slots since then are
all placed, however the lead changed hands. Of
the slots that fell while none was present (every notifier down, or cut off), only the
latest ``catch_up`` are placed when one returns."""

import logging
from datetime import datetime, timedelta
from itertools import islice, takewhile

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from orders.cadence import ONE_MICROSECOND, Cadence, CadenceError
from orders.models import Schedule, ScheduleSlot
from orders.placing import place_order
from orders.specs import OrderBuilder, OrderRejected, OrderSpec, check_client_kind
from orders.services import Outcome

log = logging.getLogger("pizzaq.schedules")

# A cap on the slots one schedule places at once (the latest are kept), and on catch_up:
# a bound, should a clock jump make a fast schedule look far behind.
MAX_SLOTS_AT_ONCE = 100
# What PIZZAQ_SCHEDULES may say of a schedule.
DEFINITION_FIELDS = ("cron", "every", "time_zone", "kind", "payload", "queue", "priority", "ttl", "catch_up")


def due_slots(cadence: Cadence, settled_through: datetime, now: datetime, present_since: datetime,
              catch_up: int) -> list[datetime]:
    """The slots to place at ``now``, earliest first: every one after ``settled_through``
    that fell while a notifier was present, and the latest ``catch_up`` of those before."""
    owed_from = max(settled_through, present_since - ONE_MICROSECOND)
    # Counted back from now, so a cap keeps the latest.
    owed = islice(takewhile(lambda at: at > owed_from, cadence.at_or_before(now)), MAX_SLOTS_AT_ONCE)
    missed = takewhile(lambda at: at > settled_through, cadence.at_or_before(present_since - ONE_MICROSECOND))
    return sorted(islice(missed, catch_up)) + sorted(owed)


def fire_due(now: datetime, present_since: datetime) -> list[ScheduleSlot]:
    """Place the due slots of every enabled schedule, each schedule in its own transaction."""
    placed = []
    for name in Schedule.objects.filter(enabled=True, next_slot_at__lte=now).values_list("pk", flat=True):
        try:
            placed += _fire(name, now, present_since)
        except CadenceError as error:
            # A row edited past the checks: said each tick, and the notifier's other duties go on.
            log.error("schedule %s cannot fire: %s", name, error)
    return placed


def _fire(name: str, now: datetime, present_since: datetime) -> list[ScheduleSlot]:
    with transaction.atomic():
        # The row lock: a second notifier placing this schedule waits here, then finds
        # its slots settled (and the slot rows' unique pair would refuse them anyway).
        schedule = Schedule.objects.select_for_update().filter(pk=name, enabled=True, next_slot_at__lte=now).first()
        if schedule is None:
            return []
        slots = due_slots(schedule.cadence(), schedule.settled_through, now, present_since, schedule.catch_up)
        placed = [slot for slot in (_place_slot(schedule, at) for at in slots) if slot is not None]
        _settle(schedule, max(now, schedule.settled_through), placed[-1] if placed else None)
    return placed


def _place_slot(schedule: Schedule, at: datetime) -> ScheduleSlot | None:
    """The slot's order and its ScheduleSlot row, or None when the slot was placed before
    or its order cannot be placed (said in the log)."""
    try:
        # A savepoint: a refused slot undoes only its own order.
        with transaction.atomic():
            order = place_order(**order_options(schedule), run_after=at)
            return ScheduleSlot.objects.create(schedule=schedule, slot_at=at, order_id=order.id)
    except IntegrityError:
        log.warning("schedule %s: slot %s was placed already; not placed again", schedule.name, at.isoformat())
    except OrderRejected as rejected:
        log.error("schedule %s: slot %s not placed: %s", schedule.name, at.isoformat(), rejected.message)
    return None


def order_options(schedule: Schedule) -> dict:
    """What each of the schedule's orders is placed with."""
    return {"kind": schedule.kind, "payload": schedule.payload, "queue": schedule.queue,
            "priority": schedule.priority, "ttl": schedule.ttl}


def _settle(schedule: Schedule, through: datetime, last: ScheduleSlot | None) -> None:
    """Every slot up to ``through`` is settled; the next one is due after it."""
    schedule.settled_through = through
    schedule.next_slot_at = _next_slot(schedule)
    if last is not None:
        schedule.last_slot_at, schedule.last_order_id, schedule.last_fired_at = last.slot_at, last.order_id, last.placed_at
    schedule.save(update_fields=["settled_through", "next_slot_at", "last_slot_at", "last_order_id", "last_fired_at"])


def forget_slots(older_than: float) -> int:
    """Delete the records of slots placed more than ``older_than`` seconds ago. A slot is
    never placed again once its schedule is settled past it, so they are only history."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    return ScheduleSlot.objects.filter(placed_at__lt=cutoff, slot_at__lt=F("schedule__settled_through")).delete()[0]


def fire_now(name: str) -> Outcome:
    """Place the schedule's order at once, outside its slots (a person's "fire now")."""
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(pk=name).first()
        if schedule is None:
            return Outcome(False, f"no schedule {name}")
        order = place_order(**order_options(schedule))
        schedule.last_order_id, schedule.last_fired_at = order.id, order.created_at
        schedule.save(update_fields=["last_order_id", "last_fired_at"])
    return Outcome(True, f"schedule {name} fired now: order {order.id}")


def set_enabled(name: str, enabled: bool) -> Outcome:
    """Enable or disable a schedule. One enabled again owes no slot from while it was off."""
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().filter(pk=name).first()
        if schedule is None:
            return Outcome(False, f"no schedule {name}")
        if schedule.enabled == enabled:
            return Outcome(False, f"schedule {name} is already {'enabled' if enabled else 'disabled'}")
        schedule.enabled = enabled
        if enabled:
            schedule.settled_through = timezone.now()
        schedule.next_slot_at = _next_slot(schedule)
        schedule.save(update_fields=["enabled", "settled_through", "next_slot_at"])
    return Outcome(True, f"schedule {name} {'enabled' if enabled else 'disabled'}")


def save_definition(schedule: Schedule) -> None:
    """Save a new schedule, or what defines an existing one (not its state: whether it is
    enabled, what it placed). A changed cadence owes nothing from before the change: its
    slots start now, or a daily schedule made hourly would place a day's slots at once."""
    with transaction.atomic():
        # The row lock: the notifier settling this schedule meanwhile keeps what it wrote.
        stored = Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
        if stored is None:
            schedule.next_slot_at = _next_slot(schedule)
            schedule.save(force_insert=True)
            return
        if stored.cadence() != schedule.cadence():
            stored.settled_through = max(stored.settled_through, timezone.now())
        for field in (*DEFINITION_FIELDS, "from_settings"):
            setattr(stored, field, getattr(schedule, field))
        stored.next_slot_at = _next_slot(stored)
        stored.save()


def _next_slot(schedule: Schedule) -> datetime:
    """The first slot after what is settled."""
    return next(schedule.cadence().after(schedule.settled_through))


def check(schedule: Schedule, *, trusted: bool = False) -> None:
    """ValueError (CadenceError, OrderRejected) saying what is wrong with a definition.
    Only ``trusted`` definitions (settings: Python code) may name an internal kind."""
    schedule.cadence()
    if not trusted:
        check_client_kind(schedule.kind)
    if (not isinstance(schedule.catch_up, int) or isinstance(schedule.catch_up, bool)
            or not 0 <= schedule.catch_up <= MAX_SLOTS_AT_ONCE):
        raise OrderRejected(f"catch_up must be a whole number from 0 to {MAX_SLOTS_AT_ONCE}", field="catch_up")
    OrderBuilder(timezone.now()).row(OrderSpec(**order_options(schedule)))


def sync_from_settings() -> None:
    """Make the schedules PIZZAQ_SCHEDULES lists the rows marked ``from_settings``: a
    starting notifier calls it. Whether one is enabled stays as people set it."""
    wanted = configured()
    with transaction.atomic():
        for name, fields in wanted.items():
            # What an entry leaves out takes the model's default.
            save_definition(Schedule(name=name, from_settings=True, **fields))
        Schedule.objects.filter(from_settings=True).exclude(pk__in=list(wanted)).delete()


def configured() -> dict[str, dict]:
    """PIZZAQ_SCHEDULES by name; ImproperlyConfigured if an entry is wrong."""
    entries = getattr(settings, "PIZZAQ_SCHEDULES", {})
    if not isinstance(entries, dict):
        raise ImproperlyConfigured("PIZZAQ_SCHEDULES must be a dict of name -> schedule")
    return {name: _checked(name, entry) for name, entry in entries.items()}


def _checked(name, entry) -> dict:
    """One PIZZAQ_SCHEDULES entry, e.g. "nightly": {"cron": "0 3 * * *", "kind": "report",
    "time_zone": "Europe/Berlin"}; ImproperlyConfigured if it is wrong."""
    def wrong(why: str):
        return ImproperlyConfigured(f"PIZZAQ_SCHEDULES[{name!r}]: {why}")

    if not isinstance(entry, dict):
        raise wrong("must be a dict")
    if unknown := sorted(set(entry) - set(DEFINITION_FIELDS)):
        raise wrong(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(DEFINITION_FIELDS)}")
    try:
        Schedule._meta.get_field("name").run_validators(name)
        check(Schedule(name=name, **entry), trusted=True)
    except ValidationError as error:
        raise wrong("; ".join(error.messages)) from None
    except ValueError as error:
        raise wrong(str(error)) from None
    return entry
