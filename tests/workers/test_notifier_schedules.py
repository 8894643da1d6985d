"""The notifier places schedules' slots: all of them while it is present, only the
catch-up after it lost the database."""

from datetime import timedelta

import pytest
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
    # No answer from the database for longer than the contact may break.
    notifier.last_contact -= notifier.contact_gap + 1

    notifier.tick()

    assert notifier.present_since > timezone.now() - timedelta(seconds=1)
    # Of the 20 slots that fell while it could not place them, one.
    assert ScheduleSlot.objects.filter(slot_at__lt=notifier.present_since).count() == 1
