"""Who may read /metrics: a caller with the bearer token, or one from an allowed network.

PIZZAQ_METRICS_TOKEN (default unset: no token opens it) and PIZZAQ_METRICS_NETWORKS
(comma-separated, default loopback only; empty: no network is enough) are read per request.
"""

import hmac
import ipaddress
import os
from functools import lru_cache

from django.core.exceptions import ImproperlyConfigured

DEFAULT_NETWORKS = "127.0.0.0/8,::1/128"


def metrics_allowed(request) -> bool:
    return _has_token(request) or _from_allowed_network(request)


def _has_token(request) -> bool:
    token = os.environ.get("PIZZAQ_METRICS_TOKEN", "")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Compare in constant time, so timing says nothing about the token.
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _from_allowed_network(request) -> bool:
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    networks = allowed_networks(os.environ.get("PIZZAQ_METRICS_NETWORKS", DEFAULT_NETWORKS))
    return any(address in network for network in networks)


@lru_cache(maxsize=8)
def allowed_networks(spec: str) -> tuple:
    """The networks in a comma-separated ``spec``; a typo is a configuration error, not a 403."""
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())
    except ValueError as error:
        raise ImproperlyConfigured(f"PIZZAQ_METRICS_NETWORKS: {error}") from None
