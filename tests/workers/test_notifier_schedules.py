"""The notifier places schedules' slots: all of them while it is present, only the
catch-up after it lost the database."""

from datetime import timedelta

import pytest
from django.db import ProgrammingError
from django.utils import timezone

from orders import schedules
from orders.models import Schedule, ScheduleSlot
from workers.notifier import Notifier

pytestmark = pytest.mark.django_db


def behind(seconds: float) -> None:
    """A schedule every second whose slots are settled up to ``seconds`` ago."""
    schedules.save_definition(Schedule(name="tick", kind="noop", every=1,
                                       settled_through=timezone.now() - timedelta(seconds=seconds)))


def test_a_leader_present_all_along_places_every_slot_it_owes():
    behind(10)
    notifier = Notifier("N1")
    assert notifier._lead()
    notifier.present_since -= timedelta(minutes=1)

    notifier.tick()

    assert ScheduleSlot.objects.count() == 10


def test_after_losing_the_database_a_leader_places_only_the_catch_up_of_what_fell_meanwhile():
    behind(20)
    notifier = Notifier("N1")
    assert notifier._lead()
    notifier.present_since -= timedelta(minutes=1)
    # No answer from the database for longer than a worker timeout.
    notifier.last_contact -= notifier.worker_timeout + 1

    notifier.tick()

    assert notifier.present_since > timezone.now() - timedelta(seconds=1)
    # Of the 20 slots that fell while it could not place them, one.
    assert ScheduleSlot.objects.filter(slot_at__lt=notifier.present_since).count() == 1


def test_one_failed_statement_or_a_slow_duty_does_not_skip_the_slots_it_delayed():
    behind(4)
    notifier = Notifier("N1")
    assert notifier._lead()
    notifier.present_since -= timedelta(minutes=1)
    # As after a statement that failed (the step drops its contact), a few seconds ago.
    notifier.contact_since, notifier.last_contact = None, notifier.last_contact - 4

    notifier.tick()

    assert ScheduleSlot.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_settings_schedules_the_database_would_not_take_at_start_are_written_once_it_does(settings, monkeypatch):
    settings.PIZZAQ_SCHEDULES = {"nightly": {"cron": "0 3 * * *", "kind": "noop"}}
    real = schedules.sync_from_settings
    monkeypatch.setattr(schedules, "sync_from_settings", lambda: (_ for _ in ()).throw(ProgrammingError("no table")))
    notifier = Notifier("N1")

    notifier.step()
    assert notifier.leading, "it leads meanwhile"
    monkeypatch.setattr(schedules, "sync_from_settings", real)
    notifier.step()

    assert list(Schedule.objects.values_list("name", flat=True)) == ["nightly"]
