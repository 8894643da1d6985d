"""Finishing attempts (fenced), retries, dead letters, cancel, expiry, leases, pruning."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from orders.models import Order, Status
from orders.services import (
    RunResult, backoff_delay, cancel, complete, complete_many, expire_overdue, extend, fail, place_order,
    prune_finished, requeue, requeue_lapsed, requeue_running_on, retry,
)
from tests.claims import claim


def moment(text: str) -> datetime:
    """A history timestamp (SQLite writes it without its zone, which is UTC)."""
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=parsed.tzinfo or UTC)


def claim_one(worker="S0"):
    [order] = claim(worker, 1)
    return order


def make_due(order):
    Order.objects.filter(pk=order.pk).update(run_after=timezone.now())


@pytest.mark.django_db
def test_complete_stores_the_result_and_history():
    place_order("bake")
    order = claim_one()

    assert complete(order, "S0", order.attempt, {"baked": "margherita"})

    order.refresh_from_db()
    assert order.status == Status.DONE and order.result == {"baked": "margherita"}
    assert [(h["worker"], h["attempt"], h["outcome"]) for h in order.history] == [("S0", 1, "done")]
    assert order.finished_at is not None


@pytest.mark.django_db
def test_a_stale_token_cannot_complete_and_changes_nothing():
    place_order("bake")
    order = claim_one()
    requeue_running_on("S0", "S0 declared dead")
    new_run = claim_one("S1")

    outcome = complete(order, "S0", order.attempt, "zombie result")

    assert not outcome and "fenced off" in outcome.message
    new_run.refresh_from_db()
    assert (new_run.status, new_run.worker, new_run.attempt, new_run.result) == (Status.RUNNING, "S1", 2, None)
    assert complete(new_run, "S1", new_run.attempt, "fresh")


@pytest.mark.django_db
def test_completing_twice_is_refused():
    place_order("noop")
    order = claim_one()
    assert complete(order, "S0", order.attempt, 1)

    outcome = complete(order, "S0", order.attempt, 2)

    assert not outcome and "it is now done" in outcome.message
    order.refresh_from_db()
    assert order.result == 1


@pytest.mark.django_db
def test_failures_retry_with_growing_delays_then_dead_letter_keeping_the_error(pizzaq_settings):
    pizzaq_settings(retry_base_delay=10, retry_max_delay=1000)
    place_order("flaky", max_attempts=3)
    delays = []
    for attempt in (1, 2):
        order = claim_one()
        before = timezone.now()
        assert fail(order, "S0", order.attempt, f"Traceback...\nRuntimeError: burnt {attempt}")
        order.refresh_from_db()
        assert order.status == Status.QUEUED
        delays.append((order.run_after - before).total_seconds())
        make_due(order)
    order = claim_one()
    outcome = fail(order, "S0", order.attempt, "Traceback...\nRuntimeError: burnt 3")

    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20 and delays[1] > delays[0]
    order.refresh_from_db()
    assert order.status == Status.DEAD and "dead after 3 attempts" in outcome.message
    assert order.last_error.endswith("RuntimeError: burnt 3")
    assert [h["error"] for h in order.history] == [f"RuntimeError: burnt {n}" for n in (1, 2, 3)]


def test_backoff_grows_and_is_capped(settings):
    settings.PIZZAQ = {"retry_base_delay": 1, "retry_max_delay": 8}

    assert 0.5 <= backoff_delay(1) <= 1
    assert 4 <= backoff_delay(4) <= 8
    assert 4 <= backoff_delay(30) <= 8


@pytest.mark.django_db
def test_retry_brings_a_dead_order_back_with_a_fresh_set_of_tries():
    place_order("flaky", max_attempts=1)
    order = claim_one()
    fail(order, "S0", order.attempt, "RuntimeError: burnt")

    assert retry(order.pk)

    order.refresh_from_db()
    assert order.status == Status.QUEUED
    again = claim_one()
    assert again.attempt == 2
    assert fail(again, "S0", again.attempt, "RuntimeError: burnt again")
    again.refresh_from_db()
    assert again.status == Status.DEAD


@pytest.mark.django_db
def test_retry_and_cancel_refuse_orders_in_the_wrong_state():
    order = place_order("noop")

    outcome = retry(order.pk)

    assert not outcome and outcome.message.endswith("is queued; only dead orders can be retried")
    claim_one()
    complete(order, "S0", 1, "done")
    outcome = cancel(order.pk)
    assert not outcome and "is done; only waiting, queued, running or dead orders can be cancelled" in outcome.message
    order.refresh_from_db()
    assert order.status == Status.DONE
    assert "no order" in cancel("01a20961-d40d-706e-b083-2b35d13d6c4c").message


@pytest.mark.django_db
def test_a_dead_letter_can_be_cancelled_for_good_keeping_its_error():
    place_order("flaky", max_attempts=1)
    order = claim_one()
    fail(order, "S0", order.attempt, "RuntimeError: burnt")

    assert cancel(order.pk)

    order.refresh_from_db()
    assert order.status == Status.CANCELLED and order.last_error == "RuntimeError: burnt"
    assert not retry(order.pk)


@pytest.mark.django_db
def test_cancelled_orders_never_run():
    order = place_order("noop")

    assert cancel(order.pk)

    assert claim("S0", 10) == []
    order.refresh_from_db()
    assert order.status == Status.CANCELLED


@pytest.mark.django_db
def test_orders_past_their_ttl_expire_and_never_run():
    order = place_order("noop", ttl=30)
    fresh = place_order("noop", ttl=300)

    assert expire_overdue(now=timezone.now() + timedelta(seconds=60)) == 1

    order.refresh_from_db()
    assert order.status == Status.EXPIRED and order.finished_at is not None
    assert [o.pk for o in claim("S0", 10)] == [fresh.pk]


@pytest.mark.django_db
def test_a_lapsed_lease_requeues_the_order_and_fences_the_stuck_run():
    place_order("bake", max_attempts=2)
    stuck = claim_one()

    assert requeue_lapsed(now=timezone.now() + timedelta(hours=1)) == 1

    assert not complete(stuck, "S0", stuck.attempt, "late")
    make_due(stuck)
    retried = claim_one("S1")
    assert retried.attempt == 2
    assert requeue_lapsed(now=timezone.now() + timedelta(hours=1)) == 1
    retried.refresh_from_db()
    assert retried.status == Status.DEAD and retried.last_error == "visibility timeout lapsed"


@pytest.mark.django_db
def test_extend_keeps_a_long_run_from_lapsing():
    place_order("bake")
    order = claim_one()

    assert extend(order, "S0", order.attempt, 3600)

    assert requeue_lapsed(now=timezone.now() + timedelta(minutes=30)) == 0


@pytest.mark.django_db
def test_a_worker_leaving_gives_its_orders_back_without_using_a_try():
    place_order("bake", max_attempts=1)
    claim_one()

    assert requeue_running_on("S0", "S0 left: stopped") == 1

    again = claim_one()
    assert fail(again, "S0", again.attempt, "RuntimeError: one real try")
    again.refresh_from_db()
    assert again.status == Status.DEAD
    assert [h["outcome"] for h in again.history] == ["requeued", "failed"]


@pytest.mark.django_db
def test_prune_deletes_only_finished_orders_past_retention():
    old_done, recent_done, queued = (place_order("noop") for _ in range(3))
    Order.objects.filter(pk__in=[old_done.pk, recent_done.pk]).update(status=Status.DONE)
    Order.objects.filter(pk=old_done.pk).update(finished_at=timezone.now() - timedelta(days=8))
    Order.objects.filter(pk=recent_done.pk).update(finished_at=timezone.now())

    assert prune_finished(older_than=7 * 24 * 3600) == 1

    assert set(Order.objects.values_list("pk", flat=True)) == {recent_done.pk, queued.pk}


@pytest.mark.django_db
def test_requeue_fences_a_stuck_run_and_revives_expired_or_cancelled_orders():
    place_order("bake", max_attempts=1)
    stuck = claim_one()
    expired = place_order("noop", ttl=1)
    expire_overdue(now=timezone.now() + timedelta(seconds=5))

    assert requeue(stuck.pk) and requeue(expired.pk)

    assert not complete(stuck, "S0", stuck.attempt, "late")
    assert {o.pk for o in claim("S1", 10)} == {stuck.pk, expired.pk}
    assert "only running, expired or cancelled" in requeue(place_order("noop").pk).message


@pytest.mark.django_db
def test_completing_a_batch_fences_each_order_on_its_own_token():

    for _ in range(3):
        place_order("noop")
    first, second, third = claim("S0", 3)
    requeue(second.pk)  # a person judged that run stuck: its token is stale now
    [second_elsewhere] = claim("S1", 3)

    now = timezone.now()
    outcomes = complete_many("S0", [RunResult(first, 1, now, now), RunResult(second, 2, now, now),
                                    RunResult(third, 3, now, now)])

    assert outcomes[first.pk] and outcomes[third.pk]
    assert not outcomes[second.pk] and "fenced off" in outcomes[second.pk].message
    second_elsewhere.refresh_from_db()
    assert (second_elsewhere.status, second_elsewhere.worker, second_elsewhere.result) == (Status.RUNNING, "S1", None)
    assert sorted(Order.objects.filter(status=Status.DONE).values_list("result", flat=True)) == [1, 3]


@pytest.mark.django_db
def test_completing_a_batch_records_every_result_and_history():

    for n in range(4):
        place_order("noop", {"n": n})
    claimed = claim("S0", 4)
    claimed_at = {order.pk: order.started_at for order in claimed}
    # Each result keeps the times its handler began and returned, not the times the
    # order was claimed and the batch was written.
    returned = {order.pk: timezone.now() + timedelta(seconds=order.payload["n"]) for order in claimed}
    began = {pk: at - timedelta(milliseconds=250) for pk, at in returned.items()}

    outcomes = complete_many("S0", [RunResult(order, {"n": order.payload["n"]}, began[order.pk], returned[order.pk])
                                    for order in claimed])

    assert all(outcomes.values()) and len(outcomes) == 4
    for order in Order.objects.all():
        assert order.status == Status.DONE and order.result == {"n": order.payload["n"]}
        assert (order.started_at, order.finished_at) == (began[order.pk], returned[order.pk])
        [entry] = order.history
        assert (entry["worker"], entry["attempt"], entry["outcome"]) == ("S0", 1, "done")
        assert entry["ended"] == returned[order.pk].isoformat()
        assert moment(entry["started"]) == began[order.pk]
        assert moment(entry["claimed"]) == claimed_at[order.pk]
