"""The demo menu: an upload places its transcodes exactly once; bakes and transcodes report progress."""

import time

import pytest
from django.db import transaction
from django.utils import timezone

from orders.handlers import get_handler
from orders.models import Order, Status
from orders.services import complete, place_order
from tests.claims import claim
from workers.incarnation import Fenced, Incarnation, Run


@pytest.mark.django_db(transaction=True)
def test_an_upload_fans_out_once_even_if_its_run_was_fenced_off():
    upload = place_order("upload", {"video": "cat.mp4", "seconds": 0})
    [stale] = claim("S0", 1)
    Order.objects.filter(pk=upload.pk).update(attempt=stale.attempt + 1)  # another run took it over
    runner = Incarnation("S0", 1, 1, 0)

    with pytest.raises(Fenced):
        runner._run_handler(Run(stale, started=time.monotonic(), began=timezone.now()))

    assert Order.objects.filter(kind="transcode").count() == 0
    Order.objects.filter(pk=upload.pk).update(attempt=stale.attempt)
    runner._run_handler(Run(stale, started=time.monotonic(), began=timezone.now()))
    transcodes = Order.objects.filter(kind="transcode")
    assert sorted(t.payload["resolution"] for t in transcodes) == ["1080p", "144p", "720p"]
    assert Order.objects.get(pk=upload.pk).status == Status.DONE
    assert get_handler("upload").atomic
    publish = Order.objects.get(kind="publish")
    assert (publish.status, publish.waiting_for) == (Status.WAITING, 3)
    assert Order.objects.filter(kind__in=["transcode", "publish"]).count() == 4


@pytest.mark.django_db(transaction=True)
def test_the_publish_order_runs_once_all_three_transcodes_are_done_and_lists_them():
    place_order("upload", {"video": "cat.mp4", "seconds": 0})

    def run_next() -> Order:
        [order] = claim("S0", 1)
        began = timezone.now()
        with transaction.atomic():
            result = get_handler(order.kind).func(order)
            assert complete(order, "S0", order.attempt, result, started_at=began)
        return Order.objects.get(pk=order.pk)

    assert run_next().kind == "upload"
    ran = [run_next() for _ in range(3)]
    assert [order.kind for order in ran] == ["transcode"] * 3
    published = run_next()

    assert published.kind == "publish" and published.status == Status.DONE
    assert published.result == {"published": "cat.mp4", "resolutions": ["1080p", "144p", "720p"]}
    assert published.started_at >= max(order.finished_at for order in ran)
    assert claim("S0", 1) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind, payload, doing", [
    ("bake", {"seconds": 0.3}, "in the oven"),
    ("transcode", {"seconds": 0.3, "resolution": "720p"}, "transcoding to 720p"),
])
def test_bakes_and_transcodes_report_progress_as_they_go(pizzaq_settings, kind, payload, doing):
    pizzaq_settings(progress_interval=0)
    place_order(kind, payload)
    [order] = claim("S0", 1)

    get_handler(kind).func(order)

    reported = Order.objects.get(pk=order.pk)
    assert 0 < reported.progress_value < 1 and reported.progress_note.startswith(doing)
