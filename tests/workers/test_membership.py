"""Membership in one process: ownership, deaths, force-fail, pinned orders, the notifier's tick."""

import time
from datetime import timedelta

import pytest
from django.db import IntegrityError, OperationalError
from django.utils import timezone

from orders.models import Order, Status
from orders.services import OrderSpec, complete, place_order, place_orders
from tests.claims import claim
from workers import leadership
from workers.hashring import HashRing
from workers.membership import Death, declare_dead, force_fail, heartbeat, register
from workers.models import Bucket, Event, EventKind, Worker, WorkerStatus
from workers.notifier import Notifier
from workers.ownership import territory

pytestmark = pytest.mark.django_db


def owners() -> dict[int, str]:
    return Bucket.objects.owners()


def silence(name: str, seconds: float = 60) -> None:
    Worker.objects.filter(name=name).update(last_heartbeat=timezone.now() - timedelta(seconds=seconds))


def die(name: str):
    return declare_dead(name, Death(EventKind.DIED, f"{name} missed heartbeats"))


def test_the_first_worker_owns_every_bucket_and_a_newcomer_takes_about_half(pizzaq_settings):
    pizzaq_settings(buckets=256)
    register("S0")
    assert set(owners().values()) == {"S0"} and len(owners()) == 256
    place_orders([OrderSpec("bake", routing_key=f"k{n}") for n in range(100)])
    in_the_oven = claim("S0", 10, mine=territory("S0"))

    before = owners()
    register("S1")
    after = owners()

    moved = [b for b in after if after[b] != before[b]]
    assert all(after[b] == "S1" for b in moved)
    assert 0.3 * 256 < len(moved) < 0.7 * 256
    assert after == HashRing(["S0", "S1"]).assignments(256)
    # Queued orders in the moved buckets follow them; running ones finish where they are.
    newcomers = claim("S1", 100, mine=territory("S1"))
    assert newcomers and all(after[o.bucket] == "S1" for o in newcomers)
    assert all(complete(o, "S0", o.attempt, "baked") for o in in_the_oven)


def territory_buckets(name: str) -> set[int]:
    """The bucket numbers a worker's territory (what its claims read) marks as its own."""
    marks = bytes(Worker.objects.get(name=name).territory)
    return {number for number, mark in enumerate(marks) if mark == 1}


def test_each_workers_territory_is_its_share_of_the_every_queue_buckets_through_joins_and_deaths(pizzaq_settings):
    pizzaq_settings(buckets=64)
    register("S0"), register("S1"), register("S2", queues=["oven"])

    def every_queue_share(name):
        return {number for number, owner in owners().items() if owner == name}

    assert {name: territory_buckets(name) for name in ("S0", "S1", "S2")} == {
        name: every_queue_share(name) for name in ("S0", "S1", "S2")}
    assert territory_buckets("S2") == set()  # it serves the oven alone: its buckets there are not these
    assert territory_buckets("S0") | territory_buckets("S1") == set(range(64))

    die("S1")

    assert territory_buckets("S1") == set() and territory_buckets("S0") == set(range(64))
    place_orders([OrderSpec("bake", routing_key=f"k{n}") for n in range(40)])
    assert len(claim("S0", 100, mine=territory("S0"))) == 40 and claim("S1", 100, mine=territory("S1")) == []


def test_a_death_moves_exactly_the_dead_workers_orders_and_leaves_the_rest(pizzaq_settings):
    pizzaq_settings(buckets=64)
    workers = [register(name) for name in ("S0", "S1", "S2")]
    place_orders([OrderSpec("bake", routing_key=f"customer-{n}") for n in range(300)])
    in_s0_oven = claim("S0", 5, mine=territory("S0"))
    in_s1_oven = claim("S1", 5, mine=territory("S1"))
    before = owners()
    queued_owner = {o.pk: before[o.bucket] for o in Order.objects.filter(status=Status.QUEUED)}

    outcome = die("S1")

    after = owners()
    assert outcome and set(after.values()) == {"S0", "S2"}
    changed = {pk for pk, owner in queued_owner.items() if after[Order.objects.get(pk=pk).bucket] != owner}
    assert changed == {pk for pk, owner in queued_owner.items() if owner == "S1"}
    assert all(Order.objects.get(pk=o.pk).status == Status.RUNNING for o in in_s0_oven)
    assert all(Order.objects.get(pk=o.pk).status == Status.QUEUED for o in in_s1_oven)
    assert not complete(in_s1_oven[0], "S1", in_s1_oven[0].attempt, "late")
    assert not heartbeat(workers[1]) and heartbeat(workers[0])


def test_the_death_event_says_how_many_orders_moved_and_where():
    register("S0"), register("S1"), register("S2")
    place_orders([OrderSpec("bake", routing_key=f"k{n}") for n in range(60)])
    claim("S2", 3, mine=territory("S2"))
    expected = Order.objects.filter(territory("S2")).count()

    die("S2")

    event = Event.objects.get(kind=EventKind.DIED)
    assert event.worker == "S2"
    assert event.data["requeued"] == 3 and sum(event.data["moved"].values()) == expected
    assert set(event.data["moved"]) <= {"S0", "S1"}
    assert f"{expected} orders moved (" in event.message and "declared dead" in event.message


def test_pinned_orders_of_a_dead_shop_fail_with_a_clear_reason():
    register("S0"), register("S3")
    take_away = place_order("bake", pinned_to="S3")
    delivery = place_order("deliver")

    die("S3")

    take_away.refresh_from_db()
    assert take_away.status == Status.DEAD and take_away.last_error == "shop S3 closed; order not moved"
    delivery.refresh_from_db()
    assert delivery.status == Status.QUEUED


def test_force_fail_does_what_a_death_does_and_says_who_did_it():
    register("S0"), register("S1")

    outcome = force_fail("S1", "alice")

    assert outcome and Worker.objects.get(name="S1").status == WorkerStatus.DEAD
    event = Event.objects.get(kind=EventKind.FORCE_FAILED)
    assert event.actor == "alice" and "force-failed by alice" in event.message
    assert set(owners().values()) == {"S0"}


def test_force_failing_a_missing_or_dead_worker_is_refused_and_changes_nothing():
    register("S0")
    force_fail("S0", "alice")
    events = Event.objects.count()

    assert force_fail("S9", "alice").message == "no worker S9"
    assert force_fail("S0", "alice").message == "worker S0 is not alive"
    assert Event.objects.count() == events


def test_a_heartbeat_that_lands_first_keeps_the_worker_alive():
    register("S0")
    cutoff = timezone.now() - timedelta(seconds=10)

    assert not declare_dead("S0", Death(EventKind.DIED, "S0 missed heartbeats"), silent_since=cutoff)
    assert Worker.objects.get(name="S0").status == WorkerStatus.ALIVE


def heard_for(notifier, seconds: float) -> None:
    """As if ``notifier`` had been in unbroken contact with the database for ``seconds``."""
    notifier.contact_since, notifier.last_contact = time.monotonic() - seconds, time.monotonic()


def test_the_notifier_buries_silent_workers_only(pizzaq_settings):
    pizzaq_settings(worker_timeout=5)
    register("S0"), register("S1")
    silence("S1")
    notifier = Notifier("N1")
    assert notifier._lead()
    heard_for(notifier, seconds=5)

    notifier.tick()

    assert dict(Worker.objects.values_list("name", "status")) == {"S0": "alive", "S1": "dead"}
    assert "S1 missed heartbeats for 6" in Event.objects.get(kind=EventKind.DIED).message


def test_a_new_leader_declares_nobody_dead_before_a_worker_timeout_of_its_own_contact(pizzaq_settings):
    pizzaq_settings(worker_timeout=5)
    register("S0")
    silence("S0")
    notifier = Notifier("N1")
    assert notifier._lead()

    notifier.tick()
    assert Worker.objects.get(name="S0").status == WorkerStatus.ALIVE, "it never had a chance to hear S0"

    heard_for(notifier, seconds=5)
    notifier.tick()
    assert Worker.objects.get(name="S0").status == WorkerStatus.DEAD


def test_after_an_outage_the_leader_waits_a_worker_timeout_before_judging_silence_or_leases(pizzaq_settings):
    pizzaq_settings(worker_timeout=5)
    register("S0")
    place_order("noop")
    [running] = claim("S0", 1)
    Order.objects.filter(pk=running.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    silence("S0")
    notifier = Notifier("N1")
    assert notifier._lead()
    heard_for(notifier, seconds=60)
    # The database went away for longer than the contact may break (a tick that failed, or none).
    notifier.last_contact -= notifier.contact_gap + 1

    notifier.tick()

    assert Worker.objects.get(name="S0").status == WorkerStatus.ALIVE
    assert Order.objects.get(pk=running.pk).status == Status.RUNNING, "its lease was not renewable either"
    heard_for(notifier, seconds=5)
    notifier.tick()
    assert Worker.objects.get(name="S0").status == WorkerStatus.DEAD


def leader_long_in_contact(pizzaq_settings) -> Notifier:
    """A leading notifier that has heard the database for a minute, and a worker S0."""
    pizzaq_settings(worker_timeout=5)
    register("S0")
    notifier = Notifier("N1")
    assert notifier._lead()
    heard_for(notifier, seconds=60)
    return notifier


def raising(error: Exception):
    return lambda *args: (_ for _ in ()).throw(error)


# step() drops broken connections, as a notifier does: not inside a test's transaction.
@pytest.mark.django_db(transaction=True)
def test_a_notifier_that_loses_the_database_starts_its_contact_over(pizzaq_settings, monkeypatch):
    notifier = leader_long_in_contact(pizzaq_settings)
    silence("S0")

    with monkeypatch.context() as outage:
        outage.setattr(leadership, "hold_or_take", raising(OperationalError("gone")))
        notifier.step()
    notifier.step()

    assert Worker.objects.get(name="S0").status == WorkerStatus.ALIVE, "it waits a worker timeout of contact"
    heard_for(notifier, seconds=5)
    notifier.step()
    assert Worker.objects.get(name="S0").status == WorkerStatus.DEAD


# step() drops broken connections, as a notifier does: not inside a test's transaction.
@pytest.mark.django_db(transaction=True)
def test_a_database_error_that_is_not_an_outage_keeps_the_contact(pizzaq_settings, monkeypatch):
    notifier = leader_long_in_contact(pizzaq_settings)
    with monkeypatch.context() as bug:
        bug.setattr(notifier, "expire_overdue", raising(IntegrityError("a bad row")))
        notifier.step()
    silence("S0")

    notifier.step()

    assert Worker.objects.get(name="S0").status == WorkerStatus.DEAD


def test_a_restarted_worker_rejoins_as_a_new_incarnation_and_the_old_one_is_fenced():
    old = register("S0")
    force_fail("S0", "alice")

    new = register("S0")

    assert new.incarnation == old.incarnation + 1
    assert not heartbeat(old) and heartbeat(new)


def test_only_one_notifier_leads_until_its_lease_lapses():
    assert leadership.hold_or_take("N1", 3)
    assert not leadership.hold_or_take("N2", 3)
    assert leadership.hold_or_take("N1", 3)

    leadership.give_up("N1")

    assert leadership.hold_or_take("N2", 3)
    assert not leadership.hold_or_take("N1", 3)


def test_take_away_orders_for_a_shop_that_is_not_open_fail_instead_of_waiting():
    register("S0")
    for_ghost = place_order("bake", pinned_to="S9")
    for_s0 = place_order("bake", pinned_to="S0")
    notifier = Notifier("N1")
    notifier._lead()

    notifier.tick()

    assert Order.objects.get(pk=for_ghost.pk).last_error == "shop S9 closed; order not moved"
    assert Order.objects.get(pk=for_s0.pk).status == Status.QUEUED


def test_the_last_worker_declared_dead_claims_nothing_though_its_buckets_wait_for_it():
    from workers.ownership import still_alive

    last = register("S0")
    force_fail("S0", "alice")
    place_orders([OrderSpec("bake", routing_key=f"k{n}") for n in range(10)])

    assert set(owners().values()) == {"S0"}, "nobody else to give its buckets to"
    assert claim("S0", 10, mine=territory("S0"), alive=still_alive(last)) == []
    again = register("S0")
    assert len(claim("S0", 10, mine=territory("S0"), alive=still_alive(again))) == 10


def test_a_dead_worker_cannot_claim_take_away_orders_placed_after_its_death():
    from workers.ownership import still_alive

    zombie = register("S3")
    force_fail("S3", "alice")
    place_order("bake", pinned_to="S3")

    assert claim("S3", 5, mine=territory("S3"), alive=still_alive(zombie)) == []
