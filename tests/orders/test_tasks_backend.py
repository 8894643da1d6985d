"""Django's Tasks API on pizzaq: a conformance suite that Django's ImmediateBackend passes
too, then what pizzaq adds (results read back, retries, recovery, pizzaq's own reasons).

Here the test process plays the worker: ``run_queued`` runs ready orders the way a
worker does. tests/system/test_tasks_worker.py does the same with real workers."""

import copy
import traceback
from datetime import datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend, task
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone

from orders.handlers import get_handler
from orders.ids import uuid7
from orders.models import Order
from orders.presenting import order_summary
from orders.services import cancel, complete, fail, place_order, requeue_lapsed, requeue_running_on
from orders.tasks_backend import TASK_KIND, OrderFailed, PizzaqBackend
from tests import tasks
from tests.claims import claim

BACKENDS = {
    "pizzaq": "orders.tasks_backend.PizzaqBackend",
    "immediate": "django.tasks.backends.immediate.ImmediateBackend",
}


def run_queued(worker: str = "T0") -> None:
    """Run every ready order here, as a worker does: the handler's value completes the
    order; what it raises fails the attempt with its traceback."""
    while claimed := claim(worker, 10):
        for order in claimed:
            try:
                complete(order, worker, order.attempt, get_handler(order.kind).func(order))
            except Exception:
                fail(order, worker, order.attempt, traceback.format_exc())


def finished(result):
    """The result once its task has run. pizzaq runs it here and reads the result back;
    Django's ImmediateBackend ran it while enqueueing."""
    if result.task.get_backend().supports_get_result:
        run_queued()
        result.refresh()
    return result


@pytest.fixture
def received():
    """``received(signal)``: the task results ``signal`` is sent with during the test, as
    they were when sent (backends keep changing the same result)."""
    connected = []

    def listen(signal):
        results = []

        def receiver(sender, task_result, **kwargs):
            results.append(copy.deepcopy(task_result))

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return results

    yield listen
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def task_settings(settings):
    """Configure the default task backend for one test."""

    def configure(backend: str = "pizzaq", **params):
        settings.TASKS = {"default": {"BACKEND": BACKENDS[backend], "QUEUES": ["default", "emails"], **params}}

    return configure


@pytest.fixture(params=sorted(BACKENDS))
def each_backend(request, task_settings, db):
    """The test runs on pizzaq, and again on Django's ImmediateBackend."""
    task_settings(request.param)


@pytest.fixture
def pizzaq(task_settings, db):
    task_settings("pizzaq")


# --- Django's documented Tasks API: the same assertions hold for ImmediateBackend -----


def test_a_task_runs_and_its_result_says_how(each_backend):
    result = finished(tasks.calculate_meaning_of_life.enqueue())

    assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished
    assert result.return_value == 42
    assert result.errors == [] and result.attempts == 1 and len(result.worker_ids) == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at


def test_arguments_and_return_values_travel_as_json(each_backend):
    result = tasks.echo.enqueue(1, (2, 3), pizza={"name": "diavola"})
    assert (result.args, result.kwargs) == ([1, [2, 3]], {"pizza": {"name": "diavola"}})

    finished(result)

    assert result.return_value == {"args": [1, [2, 3]], "kwargs": {"pizza": {"name": "diavola"}}}


def test_arguments_json_cannot_carry_are_refused_at_enqueue(each_backend):
    with pytest.raises(TypeError, match="Unsupported type"):
        tasks.echo.enqueue(datetime.now())

    assert not Order.objects.exists()


@pytest.mark.parametrize("failing, exception, message", [
    (tasks.fail_with_value_error, ValueError, "This task failed due to ValueError"),
    (tasks.exit_the_process, SystemExit, "This task failed due to SystemExit"),
])
def test_a_raising_task_fails_with_its_exception_class_and_traceback(each_backend, failing, exception, message):
    result = finished(failing.enqueue())

    assert result.status == TaskResultStatus.FAILED and result.is_finished
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value
    [error] = result.errors
    assert error.exception_class is exception
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert error.traceback.endswith(f"{exception.__name__}: {message}\n")
    assert f"raise {exception.__name__}" in error.traceback
    assert result.attempts == 1 and result.finished_at >= result.started_at


def test_a_return_value_json_cannot_carry_fails_the_task(each_backend):
    result = finished(tasks.return_a_set.enqueue())

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError
    assert "Unsupported type" in result.errors[0].traceback


def test_an_async_task_runs_and_may_use_the_async_orm(each_backend):
    place_order("noop")
    place_order("noop")

    result = finished(tasks.count_orders.enqueue("noop"))

    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2


def test_a_task_that_takes_context_sees_its_result_id_and_attempt(each_backend):
    result = finished(tasks.describe_context.enqueue())

    assert result.return_value == {"id": result.id, "attempt": 1, "workers": result.worker_ids}


def test_aenqueue_enqueues_like_enqueue(each_backend):
    result = finished(async_to_sync(tasks.calculate_meaning_of_life.aenqueue)())

    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_unconfigured_queue_names_and_out_of_range_priorities_are_refused(each_backend):
    assert tasks.echo.using(queue_name="emails").queue_name == "emails"

    with pytest.raises(InvalidTask, match="Queue 'bakery' is not valid for backend"):
        tasks.echo.using(queue_name="bakery")
    with pytest.raises(InvalidTask, match="priority must be a whole number between -100 and 100"):
        tasks.echo.using(priority=101)


def test_enqueue_sends_task_enqueued(each_backend, received, django_capture_on_commit_callbacks):
    enqueued = received(task_enqueued)

    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.echo.enqueue("hello")

    assert [sent.id for sent in enqueued] == [result.id]


# --- what pizzaq adds -------------------------------------------------------------------


def test_a_task_is_an_order_of_the_reserved_kind_with_the_tasks_priority_queue_and_time(pizzaq):
    when = timezone.now() + timedelta(minutes=5)
    deferred = tasks.echo.using(priority=7, queue_name="emails", run_after=when)

    result = deferred.enqueue("hello")

    order = Order.objects.get(pk=result.id)
    assert (order.kind, order.payload["task"], order.payload["args"]) == (TASK_KIND, "tests.tasks.echo", ["hello"])
    assert (order.priority, order.run_after, order.max_attempts) == (7, when, 1)
    assert result.status == TaskResultStatus.READY and result.task == deferred
    assert default_task_backend.get_result(result.id) == result
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result


def test_a_task_workers_could_not_import_is_refused_and_nothing_is_written(pizzaq):
    stray = task()(tasks.undecorated)

    with pytest.raises(InvalidTask, match="'tests.tasks.undecorated' does not import as this task"):
        stray.enqueue()

    assert not Order.objects.exists()


def test_a_whole_float_priority_becomes_an_order_priority(pizzaq):
    result = tasks.echo.using(priority=7.0).enqueue()

    assert Order.objects.get(pk=result.id).priority == 7


def test_a_deferred_task_waits_for_its_time(pizzaq):
    result = tasks.echo.using(run_after=timezone.now() + timedelta(minutes=5)).enqueue()

    run_queued()
    result.refresh()

    assert result.status == TaskResultStatus.READY and result.worker_ids == []


def test_nan_is_refused_in_arguments_and_fails_a_task_that_returns_it(pizzaq):
    # Django's JSON rules let NaN through; PostgreSQL's JSON cannot store it.
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        tasks.echo.enqueue(float("nan"))

    result = finished(tasks.return_nan.enqueue())

    assert result.status == TaskResultStatus.FAILED and result.errors[0].exception_class is ValueError


def test_get_result_refuses_unknown_malformed_and_non_task_ids(pizzaq):
    for unknown in (str(uuid7()), "123", str(place_order("noop").pk)):
        with pytest.raises(TaskResultDoesNotExist):
            default_task_backend.get_result(unknown)


def test_a_task_refuses_another_tasks_result(pizzaq):
    result = tasks.calculate_meaning_of_life.enqueue()

    with pytest.raises(TaskResultMismatch):
        tasks.echo.get_result(result.id)
    assert tasks.calculate_meaning_of_life.get_result(result.id) == result


def test_a_running_task_reports_its_worker_and_start(pizzaq):
    result = tasks.echo.enqueue()
    claim("T0", 1)

    async_to_sync(result.arefresh)()

    assert result.status == TaskResultStatus.RUNNING and result.worker_ids == ["T0"]
    assert result.started_at is not None and result.finished_at is None


@pytest.mark.django_db(transaction=True)
def test_a_task_reports_progress_through_its_context(pizzaq):
    result = tasks.report_halfway.enqueue()

    run_queued()

    order = Order.objects.get(pk=result.id)
    assert order_summary(order)["progress"] == {"value": 0.5, "note": "half baked", "at": order.progress_at}
    assert order.result == "baked"


def test_attempts_come_from_the_backend_options_unless_the_task_sets_them(task_settings, db):
    task_settings("pizzaq", OPTIONS={"MAX_ATTEMPTS": 4})

    results = [tasks.echo.enqueue(), tasks.always_cold.enqueue()]

    assert [Order.objects.get(pk=result.id).max_attempts for result in results] == [4, 3]


@pytest.mark.parametrize("options, message", [
    ({"MAX_ATTEMPTS": 0}, "MAX_ATTEMPTS must be a whole number between 1 and 100"),
    ({"MAX_ATEMPTS": 3}, "Unknown OPTIONS for task backend 'default': MAX_ATEMPTS"),
])
def test_bad_options_are_refused_with_a_clear_message(options, message):
    with pytest.raises(InvalidTaskBackend, match=message):
        PizzaqBackend("default", {"OPTIONS": options})


def test_a_task_with_bad_max_attempts_is_refused_where_it_is_defined(pizzaq):
    with pytest.raises(InvalidTask, match="max_attempts must be a whole number between 1 and 100"):
        task(max_attempts=0)(tasks.echo.func)


def test_a_failed_attempt_waits_for_its_retry_then_the_task_succeeds(pizzaq, pizzaq_settings):
    pizzaq_settings(retry_base_delay=60)
    result = tasks.succeed_on_attempt.enqueue(2)
    run_queued()
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.attempts == 1
    assert result.errors[0].exception_class is tasks.OvenError

    Order.objects.filter(pk=result.id).update(run_after=timezone.now())
    finished(result)

    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2
    assert result.worker_ids == ["T0", "T0"] and len(result.errors) == 1


def test_retries_keep_every_error_and_the_last_traceback_in_full(pizzaq, pizzaq_settings):
    pizzaq_settings(retry_base_delay=0, retry_max_delay=0)

    result = finished(tasks.always_cold.enqueue())

    assert result.status == TaskResultStatus.FAILED and result.attempts == 3
    assert [error.exception_class_path for error in result.errors] == ["tests.tasks.OvenError"] * 3
    assert result.errors[0].traceback == "tests.tasks.OvenError: the oven is cold"
    last = result.errors[-1].traceback
    assert last.startswith("Traceback (most recent call last):") and 'raise OvenError("the oven is cold")' in last
    assert last.endswith("tests.tasks.OvenError: the oven is cold\n") and "TaskRaised" not in last


def test_a_lost_worker_is_not_an_error_and_its_task_runs_again(pizzaq):
    result = tasks.describe_context.enqueue()
    claim("T0", 1)
    requeue_running_on("T0", "T0 declared dead")

    run_queued("T1")
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL and result.errors == []
    assert result.worker_ids == ["T0", "T1"]
    assert result.return_value == {"id": result.id, "attempt": 2, "workers": ["T0", "T1"]}


def test_a_lapsed_lease_on_the_last_attempt_fails_the_task_saying_why(pizzaq):
    result = tasks.echo.enqueue()
    claim("T0", 1)
    Order.objects.filter(pk=result.id).update(lease_expires_at=timezone.now())
    requeue_lapsed()

    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is OrderFailed and error.traceback == "visibility timeout lapsed"


def test_a_cancelled_task_fails_saying_why(pizzaq):
    result = tasks.echo.enqueue()

    assert cancel(result.id)
    result.refresh()

    assert result.status == TaskResultStatus.FAILED and result.finished_at is not None
    assert [(error.exception_class, error.traceback) for error in result.errors] == [
        (OrderFailed, "cancelled before it started")
    ]


def test_a_task_enqueued_in_a_rolled_back_transaction_was_never_enqueued(pizzaq, received,
                                                                         django_capture_on_commit_callbacks):
    enqueued = received(task_enqueued)

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            tasks.echo.enqueue()
            raise RuntimeError("changed my mind")

    assert not Order.objects.exists() and enqueued == []


def test_the_worker_sends_task_started_and_task_finished_for_each_attempt(pizzaq, received):
    started, ended = received(task_started), received(task_finished)
    tasks.calculate_meaning_of_life.enqueue()
    tasks.fail_with_value_error.enqueue()

    run_queued()

    assert [(sent.status, sent.worker_ids) for sent in started] == [(TaskResultStatus.RUNNING, ["T0"])] * 2
    assert {sent.task.name: sent.status for sent in ended} == {
        "calculate_meaning_of_life": TaskResultStatus.SUCCESSFUL, "fail_with_value_error": TaskResultStatus.FAILED,
    }
    assert [error.exception_class for sent in ended for error in sent.errors] == [ValueError]
