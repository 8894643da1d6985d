"""Periodic orders: each slot placed once, missed slots caught up as the schedule says."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from orders import schedules
from orders.cadence import Cadence, CadenceError
from orders.models import Order, Schedule, ScheduleSlot
from orders.presenting import schedule_summary
from orders.specs import OrderRejected
from orders.tasks_backend import TASK_KIND
from tests.threads import at_once

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make(name="tick", settled=T0, **fields) -> Schedule:
    schedule = Schedule(name=name, kind=fields.pop("kind", "noop"), settled_through=settled, **fields)
    if schedule.cron == "" and schedule.every is None:
        schedule.every = 1
    schedules.save_definition(schedule)
    return schedule


def placed_slots(name="tick") -> list[datetime]:
    return sorted(ScheduleSlot.objects.filter(schedule=name).values_list("slot_at", flat=True))


# --- cadence ----------------------------------------------------------------------------


def test_interval_slots_fall_on_multiples_of_the_interval_whoever_computes_them():
    cadence = Cadence(every=15)
    after = cadence.after(at(7))
    assert [next(after), next(after)] == [at(15), at(30)]
    assert next(cadence.at_or_before(at(30))) == at(30)
    assert next(cadence.after(at(30))) == at(45)


def test_cron_slots_are_wall_clock_times_in_the_schedules_zone_across_daylight_saving():
    cadence = Cadence(cron="0 3 * * *", time_zone="Europe/Berlin")
    slots = cadence.after(datetime(2026, 3, 28, 12, tzinfo=UTC))
    # 03:00 in Berlin is 02:00 UTC in winter, 01:00 UTC once summer time began on the 29th.
    assert [next(slots), next(slots)] == [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 3, 30, 1, tzinfo=UTC)]
    assert next(cadence.at_or_before(datetime(2026, 3, 29, 1, tzinfo=UTC))) == datetime(2026, 3, 29, 1, tzinfo=UTC)


@pytest.mark.parametrize("fields, message", [
    ({"cron": "61 * * * *"}, "cron expression"),
    ({"cron": "* * *"}, "cron expression"),
    ({"every": 0.5}, "at least 1"),
    ({"cron": "@daily", "every": 60}, "not both"),
    ({"every": float("inf")}, "at most ten years"),
    ({}, "either"),
    ({"every": 60, "time_zone": "Mars/Olympus"}, "unknown time zone"),
])
def test_a_cadence_that_cannot_work_is_refused_with_the_reason(fields, message):
    with pytest.raises(CadenceError, match=message):
        Cadence(**fields)


def test_in_the_hour_that_repeats_when_daylight_saving_ends_slots_never_go_backwards():
    cadence = Cadence(cron="30 2 * * *", time_zone="Europe/Berlin")
    # 02:30 in Berlin fell at 00:30 UTC (summer time) on 2026-10-25, then clocks went back.
    moment = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)

    assert next(cadence.after(moment)) > moment
    assert next(cadence.at_or_before(moment)) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_cron_shorthands_and_words_for_the_dashboard():
    assert Cadence(cron="@hourly").describe() == "At the start of every hour"
    assert Cadence(every=30).describe() == "every 30 s"
    assert "Europe/Berlin" in Cadence(cron="@daily", time_zone="Europe/Berlin").describe()


# --- which slots are due ----------------------------------------------------------------


def test_every_slot_since_a_notifier_was_present_is_due_however_late_the_tick():
    due = schedules.due_slots(Cadence(every=1), settled_through=at(10), now=at(14.5), present_since=at(0), catch_up=0)
    assert due == [at(11), at(12), at(13), at(14)]


def test_of_the_slots_no_notifier_was_there_for_only_the_latest_catch_up_are_due():
    cadence = Cadence(every=1)
    # Down from 10 s to 40 s: 29 slots missed, then the slots since it came back.
    assert schedules.due_slots(cadence, at(10), at(41.5), present_since=at(40), catch_up=1) == [at(39), at(40), at(41)]
    assert schedules.due_slots(cadence, at(10), at(41.5), present_since=at(40), catch_up=0) == [at(40), at(41)]
    assert schedules.due_slots(cadence, at(10), at(41.5), present_since=at(40), catch_up=3) == [
        at(37), at(38), at(39), at(40), at(41)]
    assert schedules.due_slots(cadence, at(38.5), at(41.5), present_since=at(40), catch_up=5) == [
        at(39), at(40), at(41)]


# --- placing ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_due_slots_are_placed_as_orders_due_at_their_slot_and_the_schedule_moves_on():
    make(payload={"n": 1}, priority=5, queue="clock")
    placed = schedules.fire_due(now=at(3.5), present_since=at(-100))

    assert [slot.slot_at for slot in placed] == [at(1), at(2), at(3)]
    orders = Order.objects.order_by("run_after")
    assert [(o.kind, o.payload, o.priority, o.queue, o.run_after) for o in orders] == [
        ("noop", {"n": 1}, 5, "clock", at(n)) for n in (1, 2, 3)]
    schedule = Schedule.objects.get()
    assert (schedule.last_slot_at, schedule.next_slot_at, schedule.last_order_id) == (at(3), at(4), orders[2].id)
    assert schedules.fire_due(now=at(3.9), present_since=at(-100)) == []


@pytest.mark.django_db
def test_a_slot_placed_already_is_never_placed_again_even_when_the_schedule_looks_behind():
    make()
    schedules.fire_due(now=at(2.5), present_since=at(-100))
    # A stale copy of the schedule (as a second notifier might hold) is refused by the slot rows.
    Schedule.objects.update(settled_through=T0, next_slot_at=at(1))
    schedules.fire_due(now=at(3.5), present_since=at(-100))

    assert placed_slots() == [at(1), at(2), at(3)]
    assert Order.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_notifiers_firing_at_once_place_each_slot_once():
    for name in ("a", "b", "c"):
        make(name)
    at_once(*[lambda: schedules.fire_due(now=at(20.5), present_since=at(-100))] * 4)

    for name in ("a", "b", "c"):
        assert placed_slots(name) == [at(n) for n in range(1, 21)]
    assert Order.objects.count() == 60


@pytest.mark.django_db
def test_after_a_stretch_with_no_notifier_one_missed_slot_is_caught_up_not_all():
    make()
    schedules.fire_due(now=at(10.5), present_since=at(-100))
    schedules.fire_due(now=at(40.5), present_since=at(40.2))

    assert placed_slots() == [at(n) for n in range(1, 11)] + [at(40)]


@pytest.mark.django_db
def test_a_disabled_schedule_places_nothing_and_owes_nothing_once_enabled_again():
    started = timezone.now()
    make(settled=started - timedelta(seconds=60))
    assert schedules.set_enabled("tick", False)
    assert schedules.fire_due(now=started, present_since=started - timedelta(hours=1)) == []
    assert schedules.set_enabled("tick", True)
    assert not schedules.set_enabled("tick", True)

    schedules.fire_due(now=started + timedelta(seconds=3), present_since=started - timedelta(hours=1))
    assert 2 <= len(placed_slots()) <= 3
    assert min(placed_slots()) > started


@pytest.mark.django_db
def test_fire_now_places_one_order_at_once_and_is_not_a_slot():
    make(payload={"report": "daily"})
    outcome = schedules.fire_now("tick")

    order = Order.objects.get()
    assert outcome and str(order.id) in outcome.message
    assert order.payload == {"report": "daily"}
    assert Schedule.objects.get().last_order_id == order.id
    assert placed_slots() == []
    assert not schedules.fire_now("nothing-by-this-name")


@pytest.mark.django_db
def test_a_slot_whose_order_cannot_be_placed_is_logged_and_skipped_not_retried_forever(caplog):
    Schedule.objects.create(name="gone", kind="no-such-kind", every=1, settled_through=T0, next_slot_at=at(1))
    assert schedules.fire_due(now=at(2.5), present_since=at(-100)) == []

    assert "unknown kind 'no-such-kind'" in caplog.text
    assert Schedule.objects.get().next_slot_at == at(3)
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_a_schedule_row_broken_behind_the_checks_is_logged_and_the_others_still_fire(caplog):
    make("good")
    Schedule.objects.create(name="broken", cron="not cron", kind="noop", settled_through=T0, next_slot_at=at(1))

    assert [slot.schedule_id for slot in schedules.fire_due(now=at(1.5), present_since=at(-100))] == ["good"]
    assert "schedule broken cannot fire: cron expression 'not cron'" in caplog.text


@pytest.mark.django_db
def test_a_schedule_whose_cadence_changes_owes_nothing_from_before_the_change():
    changed_at = timezone.now()
    make(every=3600, settled=changed_at - timedelta(hours=2))
    schedules.save_definition(Schedule(name="tick", kind="noop", every=1))

    schedules.fire_due(now=changed_at + timedelta(seconds=2.5), present_since=changed_at - timedelta(hours=5))
    assert 2 <= len(placed_slots()) <= 3, "not two hours of one-second slots"
    assert min(placed_slots()) > changed_at


@pytest.mark.django_db
def test_saving_a_definition_keeps_what_the_schedule_placed_and_whether_it_is_enabled():
    make()
    schedules.fire_due(now=at(2.5), present_since=at(-100))
    schedules.set_enabled("tick", False)
    schedules.save_definition(Schedule(name="tick", kind="noop", every=1, payload={"v": 2}))

    schedule = Schedule.objects.get()
    assert (schedule.enabled, schedule.last_slot_at, schedule.settled_through, schedule.payload) == (
        False, at(2), at(2.5), {"v": 2})


@pytest.mark.django_db
def test_more_due_slots_than_the_cap_place_the_latest():
    make(settled=at(-1000))
    placed = schedules.fire_due(now=at(0.5), present_since=at(-2000))

    assert [slot.slot_at for slot in placed] == [at(-n) for n in range(schedules.MAX_SLOTS_AT_ONCE - 1, -1, -1)]


@pytest.mark.django_db
def test_a_schedule_row_broken_behind_the_checks_reads_as_such_on_every_screen():
    Schedule.objects.create(name="broken", cron="not cron", kind="noop")

    assert schedule_summary(Schedule.objects.get())["when"].startswith("cannot fire: cron expression")


# --- definitions ------------------------------------------------------------------------


@pytest.mark.django_db
def test_settings_schedules_are_written_rows_kept_in_step_and_stale_ones_removed(settings):
    settings.PIZZAQ_SCHEDULES = {"nightly": {"cron": "0 3 * * *", "kind": "noop", "time_zone": "Europe/Berlin"},
                                 "often": {"every": 60, "kind": "noop", "catch_up": 0}}
    schedules.sync_from_settings()
    schedules.set_enabled("often", False)
    settings.PIZZAQ_SCHEDULES = {"often": {"every": 30, "kind": "noop"}}
    schedules.sync_from_settings()

    [often] = Schedule.objects.all()
    assert (often.name, often.every, often.catch_up, often.from_settings) == ("often", 30, 1, True)
    assert not often.enabled  # what a person set stays


@pytest.mark.parametrize("entry, message", [
    ({"every": 60}, "kind must be"),
    ({"every": 60, "kind": "unknown"}, "unknown kind"),
    ({"cron": "nope", "kind": "noop"}, "cron expression"),
    ({"every": 60, "kind": "noop", "priority": 500}, "priority"),
    ({"every": 60, "kind": "noop", "payload": [1]}, "payload"),
    ({"every": 60, "kind": "noop", "catch_up": -1}, "catch_up"),
    ({"every": 60, "kind": "noop", "catch_up": 5000}, "catch_up"),
    ({"every": 60, "kind": "noop", "colour": "red"}, "unknown key"),
])
@pytest.mark.django_db
def test_a_wrong_settings_schedule_fails_the_system_check_with_the_reason(settings, entry, message):
    settings.PIZZAQ_SCHEDULES = {"s": entry}
    with pytest.raises(ImproperlyConfigured, match=message):
        schedules.configured()
    with pytest.raises(SystemCheckError, match=message):
        call_command("check")


def test_clients_may_not_schedule_internal_kinds_but_settings_may():
    internal = Schedule(name="t", every=60, kind=TASK_KIND, payload={})
    with pytest.raises(OrderRejected, match="unknown kind"):
        schedules.check(internal)
    schedules.check(internal, trusted=True)
