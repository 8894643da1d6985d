"""API tokens: random secrets handed out once; only their SHA-256 is stored."""

import hashlib
import hmac
import secrets
from datetime import timedelta
from functools import lru_cache

from django.db import connection
from django.db.models import DEFERRED
from django.utils import timezone

from orders.models import ApiToken
from orders.prepared import prepared_cursor

PREFIX = "pzq_"
# last_used_at is written at most this often: it says whether a token is still in use,
# and a write (a commit) per request would cost as much as placing the order.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_token(user, name: str = "default", expires_at=None) -> tuple[ApiToken, str]:
    """A new token for ``user``; the clear key is returned once and never stored."""
    key = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=key[: len(PREFIX) + 4], key_hash=_hash(key), expires_at=expires_at
    )
    return token, key


def authenticate_token(key: str) -> ApiToken | None:
    """The usable token for ``key`` (recording its use), or None. The token carries only
    the fields the check reads; its user is fetched if asked for."""
    digest = _hash(key)
    row = _find(digest)
    checked = dict(zip(_CHECKED, row)) if row is not None else None
    # The lookup is by hash; compare again in constant time so timing says nothing.
    if checked is None or not hmac.compare_digest(checked["key_hash"], digest):
        return None
    now = timezone.now()
    if checked["revoked_at"] or (checked["expires_at"] and checked["expires_at"] <= now) or not checked["active"]:
        return None
    token = ApiToken.from_db(connection.alias, _TOKEN_FIELDS, [checked.get(field.attname, DEFERRED)
                                                               for field in ApiToken._meta.concrete_fields])
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


# What a check reads: the token's own columns, and whether its user is active.
_CHECKED = ("id", "key_hash", "user_id", "expires_at", "revoked_at", "last_used_at", "active")
_TOKEN_FIELDS = frozenset(_CHECKED[:-1])
_MARK = "pizzaq-token-digest"


def _find(digest: str) -> tuple | None:
    """The checked columns of the token whose hash is ``digest``. On PostgreSQL one
    prepared statement: compiling the ORM's query cost a third of an API request."""
    if connection.vendor != "postgresql":
        return _lookup().filter(key_hash=digest).first()
    with prepared_cursor() as cursor:
        cursor.execute(_lookup_sql(), [digest])
        return cursor.fetchone()


def _lookup():
    return ApiToken.objects.values_list(*_CHECKED[:-1], "user__is_active")


@lru_cache(maxsize=1)
def _lookup_sql() -> str:
    """The ORM's SQL for the lookup by hash, compiled once (the hash is unique: no order)."""
    sql, params = _lookup().filter(key_hash=_MARK).query.sql_with_params()
    if params != (_MARK,):
        raise RuntimeError("the token lookup lost track of its one parameter")
    return sql
