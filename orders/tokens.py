"""API tokens: random secrets handed out once; only their SHA-256 is stored."""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.utils import timezone

from orders.models import ApiToken

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
    """The usable token for ``key`` (recording its use), or None."""
    digest = _hash(key)
    token = ApiToken.objects.select_related("user").filter(key_hash=digest).first()
    # The lookup is by hash; compare again in constant time so timing says nothing.
    if token is None or not hmac.compare_digest(token.key_hash, digest):
        return None
    now = timezone.now()
    if token.revoked_at or (token.expires_at and token.expires_at <= now) or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
