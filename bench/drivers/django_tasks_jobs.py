"""The tasks ``db_worker`` runs; a module of their own, so their import path is stable."""

import time

from django.tasks import task


@task
def noop(seq: int) -> None:
    """The benchmarks' job: nothing at all."""


@task
def sleep(seq: int, seconds: float) -> None:
    time.sleep(seconds)
