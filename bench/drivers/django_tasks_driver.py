"""django-tasks-db's client side (Django's Tasks framework with the database backend).

    python -m bench.drivers django_tasks enqueue|fill|paced|long --n N

Django's Tasks framework has no batch enqueue, so there is no ``bulk``.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.drivers.django_tasks_settings")
import django  # noqa: E402

django.setup()

from bench.drivers.common import emit, paced, timed  # noqa: E402
from bench.drivers.django_tasks_jobs import noop, sleep  # noqa: E402


def enqueue(args) -> None:
    def enqueue_each(n):
        for seq in range(n):
            noop.enqueue(seq)

    emit(seconds=timed(enqueue_each, args.n))


def fill(args) -> None:
    """Queue ``n`` tasks in one INSERT: a scenario's setup, not a measurement. The rows are
    what ``noop.enqueue(seq)`` writes; Django's Tasks API has no batch call to do it."""
    from django_tasks_db.models import DBTaskResult, get_date_max

    # bulk_create skips the pre_save signal that turns "no run_after" into the max date.
    rows = [DBTaskResult(args_kwargs={"args": [seq], "kwargs": {}}, priority=noop.priority, task_path=noop.module_path,
                         queue_name=noop.queue_name, run_after=get_date_max(), backend_name=noop.backend)
            for seq in range(args.n)]
    DBTaskResult.objects.bulk_create(rows, batch_size=5000)
    emit(placed=args.n)


def paced_jobs(args) -> None:
    emit(placed=paced(noop.enqueue, args.every_ms, args.seconds))


def long_job(args) -> None:
    emit(job=str(sleep.enqueue(0, args.sleep).id))


COMMANDS = {"enqueue": enqueue, "fill": fill, "paced": paced_jobs, "long": long_job}
