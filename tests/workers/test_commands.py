"""The failworker command and the admin's force-fail action."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from workers.membership import register
from workers.models import Event, EventKind, Worker, WorkerStatus

pytestmark = pytest.mark.django_db


def test_failworker_fences_the_worker_and_records_who(capsys):
    register("S0"), register("S3")

    call_command("failworker", "S3", "--actor", "bob")

    assert Worker.objects.get(name="S3").status == WorkerStatus.DEAD
    assert Event.objects.get(kind=EventKind.FORCE_FAILED).actor == "bob"
    assert "S3 force-failed by bob: declared dead" in capsys.readouterr().out


def test_failworker_refuses_a_missing_worker():
    with pytest.raises(CommandError, match="no worker S9"):
        call_command("failworker", "S9")


def test_the_admin_force_fail_action_calls_the_same_service(client):
    register("S0"), register("S1")
    staff = get_user_model().objects.create_superuser("alice", "a@example.com", "pw")
    client.force_login(staff)
    s1 = Worker.objects.get(name="S1")

    response = client.post("/admin/workers/worker/", {"action": "force_fail_workers", "_selected_action": [s1.pk]})

    assert response.status_code == 302
    assert Worker.objects.get(name="S1").status == WorkerStatus.DEAD
    assert Event.objects.get(kind=EventKind.FORCE_FAILED).actor == "alice"
