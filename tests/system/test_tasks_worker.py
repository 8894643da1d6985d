"""Django tasks on real `manage.py runworker` processes: results read back, failures and
retries, priority, run_after, async tasks, context, and a worker killed mid-task."""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus, default_task_backend
from django.utils import timezone

from orders.services import place_order
from tests import tasks
from tests.conftest import wait_for
from workers.models import Worker, WorkerStatus

pytestmark = pytest.mark.system

FAST = {"PIZZAQ_POLL_INTERVAL": "0.2", "PIZZAQ_HEARTBEAT_INTERVAL": "0.5"}


def finished(*results):
    """A predicate: every one of ``results``, read back now, has finished."""

    def check():
        for result in results:
            result.refresh()
        return all(result.is_finished for result in results)

    return check


def alive(*names):
    return lambda: Worker.objects.filter(name__in=names, status=WorkerStatus.ALIVE).count() == len(names)


def test_an_enqueued_task_runs_on_a_worker_and_its_result_is_read_back(processes):
    result = tasks.calculate_meaning_of_life.enqueue()
    echoed = tasks.echo.enqueue(1, pizza="diavola")

    # The handler modules a fresh deployment has: running tasks needs no configuration.
    processes.worker("S0", PIZZAQ_HANDLER_MODULES="", **FAST)
    wait_for(finished(result, echoed), message="both tasks to finish")

    fresh = default_task_backend.get_result(result.id)
    assert fresh.status == TaskResultStatus.SUCCESSFUL and fresh.return_value == 42
    assert fresh.worker_ids == ["S0"] and fresh.enqueued_at <= fresh.started_at <= fresh.finished_at
    assert echoed.return_value == {"args": [1], "kwargs": {"pizza": "diavola"}}


def test_a_task_enqueued_on_the_emails_queue_runs_only_on_a_worker_serving_emails(processes):
    processes.worker("S0", extra_args=["--queues", "default"], **FAST)
    wait_for(alive("S0"), message="the default-only worker to join")
    receipt = tasks.echo.using(queue_name="emails").enqueue("receipt")
    plain = tasks.echo.enqueue("plain")

    wait_for(finished(plain), message="the default queue's task to finish")
    time.sleep(1)  # S0 claims every 0.2 s at least: it had its chances at the receipt too
    receipt.refresh()
    assert receipt.status == TaskResultStatus.READY and plain.worker_ids == ["S0"]

    processes.worker("S1", extra_args=["--queues", "emails"], **FAST)
    wait_for(finished(receipt), message="the emails task to finish")
    assert receipt.status == TaskResultStatus.SUCCESSFUL and receipt.worker_ids == ["S1"]
    assert receipt.task.queue_name == "emails"


def test_a_raising_task_fails_at_once_by_default_and_after_its_retries_when_asked(processes):
    at_once = tasks.fail_with_value_error.enqueue()
    retried = tasks.always_cold.enqueue()

    processes.worker("S0", PIZZAQ_RETRY_BASE_DELAY="0.1", **FAST)
    wait_for(finished(at_once, retried), message="both tasks to fail")

    assert at_once.status == TaskResultStatus.FAILED and at_once.attempts == 1
    [error] = at_once.errors
    assert error.exception_class is ValueError
    assert error.traceback.endswith("ValueError: This task failed due to ValueError\n")
    assert retried.status == TaskResultStatus.FAILED and retried.worker_ids == ["S0"] * 3
    assert [error.exception_class for error in retried.errors] == [tasks.OvenError] * 3
    assert 'raise OvenError("the oven is cold")' in retried.errors[-1].traceback


def test_higher_priority_tasks_run_first(processes):
    results = {
        name: tasks.echo.using(priority=priority).enqueue(name)
        for name, priority in [("low", -10), ("normal", 0), ("high", 50), ("urgent", 100)]
    }

    processes.worker("S0", concurrency=1, **FAST)
    wait_for(finished(*results.values()), message="every task to finish")

    served = sorted(results, key=lambda name: results[name].started_at)
    assert served == ["urgent", "high", "normal", "low"]


def test_a_deferred_task_waits_for_its_run_after(processes):
    processes.worker("S0", **FAST)
    wait_for(alive("S0"))
    run_after = timezone.now() + timedelta(seconds=1.5)

    deferred = tasks.echo.using(run_after=run_after).enqueue("later")

    wait_for(finished(deferred), message="the deferred task to finish")
    assert deferred.status == TaskResultStatus.SUCCESSFUL and deferred.started_at >= run_after


def test_an_async_task_and_a_task_that_takes_context_run_on_a_worker(processes):
    place_order("noop")
    place_order("noop")
    counted = tasks.count_orders.enqueue("noop")
    described = tasks.describe_context.enqueue()
    second_try = tasks.succeed_on_attempt.enqueue(2)

    processes.worker("S0", PIZZAQ_RETRY_BASE_DELAY="0.1", **FAST)
    wait_for(finished(counted, described, second_try), message="every task to finish")

    assert counted.status == TaskResultStatus.SUCCESSFUL and counted.return_value == 2
    assert described.return_value == {"id": described.id, "attempt": 1, "workers": ["S0"]}
    assert second_try.status == TaskResultStatus.SUCCESSFUL and second_try.return_value == 2
    assert [error.exception_class for error in second_try.errors] == [tasks.OvenError]


@pytest.mark.postgres
def test_a_task_whose_worker_is_killed_mid_run_completes_on_another_worker(processes):
    failover = {**FAST, "PIZZAQ_WORKER_TIMEOUT": "2"}
    processes.notifier("N1", **failover)
    workers = {name: processes.worker(name, **failover) for name in ("S0", "S1")}
    wait_for(alive("S0", "S1"))
    result = tasks.bake_slowly.enqueue(5)
    wait_for(lambda: result.refresh() or result.status == TaskResultStatus.RUNNING, message="a worker baking")
    [victim] = result.worker_ids
    [survivor] = set(workers) - {victim}

    os.kill(workers[victim].pid, signal.SIGKILL)

    wait_for(finished(result), timeout=30, message=f"{survivor} to finish the task")
    # One try by default, yet the task ran again: a crash is not the task's failure.
    assert result.status == TaskResultStatus.SUCCESSFUL and result.errors == []
    assert result.worker_ids == [victim, survivor] and result.return_value == 2
