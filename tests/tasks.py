"""Django tasks for the tests, defined the way an app in this project defines them."""

import asyncio
import time

from django.tasks import task

from orders.models import Order


class OvenError(Exception):
    """A task's own exception."""


@task()
def calculate_meaning_of_life():
    return 42


@task()
def echo(*args, **kwargs):
    """Return the arguments as the task received them."""
    return {"args": args, "kwargs": kwargs}


@task()
def fail_with_value_error():
    raise ValueError("This task failed due to ValueError")


@task()
def exit_the_process():
    raise SystemExit("This task failed due to SystemExit")


@task()
def return_a_set():
    return {1, 2}


@task()
def return_nan():
    return float("nan")


@task()
async def count_orders(kind):
    """An async task that reads the database with the async ORM."""
    await asyncio.sleep(0)
    return await Order.objects.filter(kind=kind).acount()


@task(takes_context=True)
def describe_context(context):
    return {"id": context.task_result.id, "attempt": context.attempt, "workers": context.task_result.worker_ids}


@task(takes_context=True, max_attempts=3)
def succeed_on_attempt(context, attempt):
    """Raise until the given attempt, then say which attempt it was."""
    if context.attempt < attempt:
        raise OvenError(f"cold oven on attempt {context.attempt}")
    return context.attempt


@task(max_attempts=3)
def always_cold():
    raise OvenError("the oven is cold")


@task(takes_context=True)
def report_halfway(context):
    """Report that it is half done, then finish."""
    context.progress(0.5, "half baked")
    return "baked"


@task(takes_context=True)
def bake_slowly(context, seconds):
    """Sleep, then say which attempt finished."""
    time.sleep(seconds)
    return context.attempt


def undecorated():
    """A module-level function no @task turned into a task under its own name."""


@task()
def interrupt():
    raise KeyboardInterrupt("This task raised KeyboardInterrupt")
