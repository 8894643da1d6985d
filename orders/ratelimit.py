"""A per-client limit on placing orders: a fixed window counted in Django's cache.

With the default local-memory cache each web process counts on its own; configure a
shared cache (CACHES) to count across processes."""

import math
import time

from django.core.cache import cache

from orders import conf


def take(client_key: str, orders: int = 1) -> float:
    """Count ``orders`` against ``client_key``; 0 if allowed, else seconds until it may retry."""
    settings = conf.get()
    window = int(time.time() // settings.rate_window)
    key = f"pizzaq:rate:{client_key}:{window}"
    cache.add(key, 0, timeout=math.ceil(settings.rate_window) + 1)
    used = cache.incr(key, orders)
    if used <= settings.rate_limit:
        return 0.0
    # Give back what this request would have used: refused orders do not count.
    cache.decr(key, orders)
    return (window + 1) * settings.rate_window - time.time()
