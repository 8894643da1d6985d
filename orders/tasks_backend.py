"""Django's Tasks framework on pizzaq: an enqueued task becomes an order of the reserved
kind "django.task", and pizzaq's workers run it like any other order (docs/tasks.md)."""

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from traceback import format_exception

from django.core.exceptions import ValidationError
from django.db import transaction
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from orders.handlers import handler
from orders.history import FAILED_OUTCOMES
from orders.models import Order, Status
from orders.services import place_order
from orders.specs import MAX_ATTEMPTS_LIMIT

TASK_KIND = "django.task"
# As Django documents it, a task that raises has failed; retrying is something to ask for.
DEFAULT_MAX_ATTEMPTS = 1

TASK_STATUS = {
    # Waiting for its first run, or for a retry after a failed attempt.
    Status.QUEUED: TaskResultStatus.READY,
    Status.RUNNING: TaskResultStatus.RUNNING,
    Status.DONE: TaskResultStatus.SUCCESSFUL,
    # Failed its last attempt.
    Status.DEAD: TaskResultStatus.FAILED,
    # Never ran again: Django's "unable to start".
    Status.EXPIRED: TaskResultStatus.FAILED,
    Status.CANCELLED: TaskResultStatus.FAILED,
}
# How Python's traceback joins an exception to the one it was raised from.
CAUSE_SEPARATOR = "\nThe above exception was the direct cause of the following exception:\n\n"


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class TaskRaised(Exception):
    """The task raised. Its one-line message names the exception's class, so the one-line
    error that each failed attempt keeps in the order's history still names it."""

    def __init__(self, error: BaseException):
        message = class_path(type(error))
        if first_line := next(iter(str(error).strip().splitlines()), ""):
            message += f": {first_line}"
        super().__init__(message)


class OrderFailed(Exception):
    """pizzaq, not the task, ended an attempt or the order: a lapsed lease, a closed
    shop, a cancellation."""


RAISED_PREFIX = f"{class_path(TaskRaised)}: "


@dataclass(frozen=True, slots=True, kw_only=True)
class PizzaqTask(Task):
    # Attempts before the task is FAILED; None: the backend's MAX_ATTEMPTS option.
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PizzaqTaskContext(TaskContext):
    """Django's task context, for a task a pizzaq worker runs: it can report progress."""

    order: Order

    def progress(self, value: float, note: str = "") -> None:
        """How far the task has got, a fraction from 0 to 1, and a few words: its order's
        ``progress`` (written at most once per PIZZAQ progress_interval)."""
        self.order.progress(value, note)


def _check_attempts(value, error_class, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise error_class(f"{name} must be a whole number between 1 and {MAX_ATTEMPTS_LIMIT}, got {value!r}.")
    return value


def _check_importable(task) -> None:
    """Workers find a task by its path: refuse one they would not find there. (Not in
    validate_task, which runs while the task's module is still being imported.)"""
    try:
        found = import_string(task.module_path)
    except ImportError:
        found = None
    if getattr(found, "func", None) is not task.func:
        raise InvalidTask(f"{task.module_path!r} does not import as this task, so no worker could run it.")


class PizzaqBackend(BaseTaskBackend):
    task_class = PizzaqTask

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias, params):
        super().__init__(alias, params)
        unknown = sorted(set(self.options) - {"MAX_ATTEMPTS"})
        if unknown:
            raise InvalidTaskBackend(f"Unknown OPTIONS for task backend {alias!r}: {', '.join(unknown)}.")
        self.max_attempts = _check_attempts(
            self.options.get("MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS), InvalidTaskBackend, "MAX_ATTEMPTS"
        )

    def validate_task(self, task):
        super().validate_task(task)
        if getattr(task, "max_attempts", None) is not None:
            _check_attempts(task.max_attempts, InvalidTask, "max_attempts")

    def enqueue(self, task, args, kwargs):
        """Place the task as an order; like any order, it commits with the caller's
        transaction, if there is one."""
        self.validate_task(task)
        _check_importable(task)
        payload = {
            "task": task.module_path,
            # Django's own JSON rules (TaskResult applies the same): what JSON cannot
            # carry is refused here, before anything is written.
            "args": normalize_json(args),
            "kwargs": normalize_json(kwargs),
            "backend": self.alias,
            "queue_name": task.queue_name,
            "run_after": task.run_after and task.run_after.isoformat(),
        }
        order = place_order(
            TASK_KIND, payload, queue=task.queue_name, priority=int(task.priority), run_after=task.run_after,
            max_attempts=getattr(task, "max_attempts", None) or self.max_attempts,
        )
        result = result_from_order(order)
        # Only a task whose order committed was enqueued.
        transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=result))
        return result

    def get_result(self, result_id):
        try:
            order = Order.objects.get(pk=result_id, kind=TASK_KIND)
        except (Order.DoesNotExist, ValidationError):
            raise TaskResultDoesNotExist(result_id) from None
        return result_from_order(order)


# --- an order, seen as a Django TaskResult ---------------------------------------------


def result_from_order(order: Order) -> TaskResult:
    """The TaskResult of a task's order, as the order stands now."""
    runs = _runs(order)
    result = TaskResult(
        task=_task(order),
        id=str(order.pk),
        status=TASK_STATUS[order.status],
        enqueued_at=order.created_at,
        started_at=runs[0][1] if runs else None,
        last_attempted_at=runs[-1][1] if runs else None,
        finished_at=order.finished_at,
        args=order.payload["args"],
        kwargs=order.payload["kwargs"],
        backend=order.payload["backend"],
        errors=_errors(order),
        worker_ids=[worker for worker, _ in runs],
    )
    if order.status == Status.DONE:
        object.__setattr__(result, "_return_value", order.result)
    return result


def _task(order: Order) -> Task:
    """The enqueued task: the one its module defines, as ``using()`` changed it."""
    path = order.payload["task"]
    task = import_string(path)
    if not isinstance(task, Task):
        raise ValueError(f"Expected {path!r} to point to a Task instance.")
    run_after = order.payload["run_after"]
    return replace(
        task, priority=order.priority, queue_name=order.payload["queue_name"],
        backend=order.payload["backend"], run_after=run_after and parse_datetime(run_after),
    )


def _runs(order: Order) -> list[tuple[str, datetime]]:
    """(worker, start) of every attempt: the finished ones, then the one running now."""
    runs = [(entry["worker"], _moment(entry["started"])) for entry in order.history if entry["worker"]]
    if order.status == Status.RUNNING:
        runs.append((order.worker, order.started_at))
    return runs


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    # SQLite writes a naive UTC time into the history.
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)


def _errors(order: Order) -> list[TaskError]:
    """One error per failed attempt. The order keeps the full text of its latest error
    only; earlier attempts keep their one-line summary."""
    failures = [entry for entry in order.history if entry["outcome"] in FAILED_OUTCOMES]
    errors = [_task_error(entry["error"]) for entry in failures]
    if failures and _is_full_text_of(order.last_error, failures[-1]["error"]):
        errors[-1] = _task_error(failures[-1]["error"], order.last_error)
    elif order.status in (Status.EXPIRED, Status.CANCELLED):
        # It ended without another run: say why.
        errors.append(_task_error(order.last_error))
    return errors


def _is_full_text_of(error: str, summary: str) -> bool:
    lines = error.strip().splitlines()
    return bool(lines) and lines[-1].startswith(summary)


def _task_error(summary: str, full_text: str = "") -> TaskError:
    raised = summary.removeprefix(RAISED_PREFIX)
    if raised == summary:
        return TaskError(exception_class_path=class_path(OrderFailed), traceback=full_text or summary)
    # The full text is the task's traceback, then the TaskRaised that carried it.
    traceback = full_text.rpartition(CAUSE_SEPARATOR)[0] or raised
    return TaskError(exception_class_path=raised.partition(": ")[0], traceback=traceback)


# --- running a task in a worker --------------------------------------------------------


@handler(TASK_KIND, public=False)
def run_task(order: Order):
    """Run the task an order names; its JSON return value becomes the order's result."""
    try:
        return _run(result_from_order(order), order)
    except BaseException as error:  # noqa: B036
        # Like Django's own backends, anything the task raises fails it (KeyboardInterrupt
        # and SystemExit too: in an order thread they can only come from the task).
        raise TaskRaised(error) from error


def _run(task_result: TaskResult, order: Order):
    task = task_result.task
    sender = type(task.get_backend())
    task_started.send(sender, task_result=task_result)
    try:
        context = [PizzaqTaskContext(task_result=task_result, order=order)] if task.takes_context else []
        # Task.call runs an async function to completion with async_to_sync.
        value = _json_value(task.call(*context, *task_result.args, **task_result.kwargs))
    except BaseException as error:
        # Receivers hear of the attempt as it ends, just before the worker records it.
        _ended(task_result, TaskResultStatus.FAILED, error=error)
        task_finished.send(sender, task_result=task_result)
        raise
    _ended(task_result, TaskResultStatus.SUCCESSFUL, value=value)
    task_finished.send(sender, task_result=task_result)
    return value


def _json_value(value):
    """The return value under Django's JSON rules; NaN and infinities, which PostgreSQL
    cannot store, are refused too, so the attempt fails instead of its completion."""
    value = normalize_json(value)
    json.dumps(value, allow_nan=False)
    return value


def _ended(task_result: TaskResult, status, value=None, error: BaseException | None = None) -> None:
    object.__setattr__(task_result, "status", status)
    object.__setattr__(task_result, "finished_at", timezone.now())
    object.__setattr__(task_result, "_return_value", value)
    if error is not None:
        traceback = "".join(format_exception(error))
        task_result.errors.append(TaskError(exception_class_path=class_path(type(error)), traceback=traceback))
