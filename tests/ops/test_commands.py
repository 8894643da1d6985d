"""Long commands with progress bars: placeorders and pruneorders."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders.models import Order, PrunedTally, Status

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_placeorders_places_every_order_in_batches(capsys):
    output = run("placeorders", "bake", "--count", "2500", "--batch", "1000", "--priority", "7",
                 "--payload", '{"seconds": 0}')

    assert output.strip() == "placed 2500 bake orders"
    assert Order.objects.filter(kind="bake", priority=7, status=Status.QUEUED, payload={"seconds": 0}).count() == 2500
    assert "2500/2500" in capsys.readouterr().err, "the progress bar ends full"


@pytest.mark.parametrize("args, message", [
    (["nope"], "kind: unknown kind 'nope'"),
    (["noop", "--payload", "[1]"], "payload: payload must be a JSON object"),
    (["noop", "--payload", "{oops"], "--payload is not JSON"),
    (["noop", "--count", "0"], "--count and --batch must be 1 or more"),
])
def test_placeorders_refuses_a_bad_request_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("placeorders", *args)
    assert not Order.objects.exists()


def test_pruneorders_deletes_only_old_finished_orders_and_keeps_their_tally(capsys):
    run("placeorders", "noop", "--count", "30")
    long_ago = timezone.now() - timedelta(days=30)
    old = Order.objects.order_by("id")[:20].values_list("id", flat=True)
    Order.objects.filter(id__in=list(old)).update(status=Status.DONE, finished_at=long_ago, started_at=long_ago)

    output = run("pruneorders", "--older-than", "86400", "--batch", "7")

    assert output.strip() == "pruned 20 finished orders older than 86400 s"
    assert Order.objects.filter(status=Status.QUEUED).count() == 10 and Order.objects.count() == 10
    assert PrunedTally.objects.get(kind="noop", status=Status.DONE).orders == 20
    assert "20/20" in capsys.readouterr().err


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # REINDEX CONCURRENTLY refuses to run in a transaction
def test_pruneorders_reindex_gives_back_the_index_space_a_large_prune_leaves():
    from orders.compaction import index_sizes

    run("placeorders", "noop", "--count", "20000", "--batch", "20000")
    long_ago = timezone.now() - timedelta(days=30)
    Order.objects.update(status=Status.DONE, finished_at=long_ago, started_at=long_ago)
    peak = index_sizes()

    output = run("pruneorders", "--older-than", "86400", "--reindex")

    after = index_sizes()
    assert Order.objects.count() == 0
    assert "pruned 20000 finished orders" in output and "order indexes:" in output
    assert set(after) == set(peak)  # every index is still there, rebuilt
    assert sum(after.values()) < sum(peak.values()) / 10


def test_pruneorders_reindex_is_refused_on_sqlite_before_anything_is_pruned(settings):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the refusal is SQLite's")
    run("placeorders", "noop", "--count", "3")
    Order.objects.update(status=Status.DONE, finished_at=timezone.now() - timedelta(days=30))

    with pytest.raises(CommandError, match="--reindex is for PostgreSQL"):
        run("pruneorders", "--older-than", "0", "--reindex")
    assert Order.objects.count() == 3


def test_serve_refuses_a_process_count_below_one():
    with pytest.raises(CommandError, match="--processes must be at least 1"):
        call_command("serve", "--processes", "0")
