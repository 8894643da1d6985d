"""Token lifecycle from the command line; what the database holds."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from orders.models import ApiToken
from orders.tokens import authenticate_token

pytestmark = pytest.mark.django_db


def create(capsys, *args) -> str:
    call_command("createtoken", *args)
    return capsys.readouterr().out.strip()


@pytest.fixture
def user(db):
    return get_user_model().objects.create_user("cashier", password="pw")


def test_no_table_holds_a_usable_token_in_clear_text(capsys, user):
    key = create(capsys, "cashier", "--name", "till")
    assert authenticate_token(key).user == user

    with connection.cursor() as cursor:
        dumps = []
        for table in ("orders_apitoken", "orders_order", "auth_user"):
            cursor.execute(f"SELECT * FROM {table}")
            dumps.append(json.dumps(cursor.fetchall(), default=str))
    assert all(key not in dump and key[4:] not in dump for dump in dumps)


def test_tokens_are_listed_by_prefix_and_can_be_revoked(capsys, user):
    key = create(capsys, "cashier", "--name", "till")
    prefix = ApiToken.objects.get().prefix

    call_command("listtokens")
    listing = capsys.readouterr().out
    call_command("revoketoken", prefix)

    assert prefix in listing and "till" in listing and "active" in listing and key not in listing
    assert authenticate_token(key) is None
    call_command("listtokens", "cashier")
    assert "revoked" in capsys.readouterr().out


def test_expiring_tokens_stop_working(capsys, user):
    key = create(capsys, "cashier", "--expires-in-days", "1")
    ApiToken.objects.update(expires_at="2000-01-01T00:00:00Z")

    assert authenticate_token(key) is None


def test_a_token_stops_working_when_its_user_is_deactivated_and_records_its_use(capsys, user):
    key = create(capsys, "cashier")
    token = authenticate_token(key)
    assert token.user == user and ApiToken.objects.get().last_used_at is not None

    user.is_active = False
    user.save()

    assert authenticate_token(key) is None
    assert authenticate_token(key[:-1] + ("A" if key[-1] != "A" else "B")) is None


def test_bad_token_commands_say_why():
    with pytest.raises(CommandError, match="no user 'ghost'"):
        call_command("createtoken", "ghost")
    with pytest.raises(CommandError, match="no active token"):
        call_command("revoketoken", "pzq_nope")
