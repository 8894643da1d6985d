"""ASGI entry point: HTTP through Django's WSGI handler on a pool of threads, the
dashboard's websocket through channels.

Under ASGI, Django runs a sync view by handing the view and each sync middleware hook to
a thread, one hop each, for every request; for the JSON API, whose requests are short and
mostly wait on PostgreSQL, the hops cost more than the request. Served as WSGI on a pool
of threads (a2wsgi), a request runs from start to end on one thread, which keeps its
database connection from one request to the next, and requests wait on PostgreSQL side by
side. PIZZAQ_WEB_THREADS sets the pool's size."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzaq.settings")
django_application = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from pizzaq.dashboard.routing import websocket_urlpatterns  # noqa: E402

WEB_THREADS = int(os.environ.get("PIZZAQ_WEB_THREADS", "16"))

application = ProtocolTypeRouter({
    "http": WSGIMiddleware(django_application, workers=WEB_THREADS),
    # Refuses websockets opened from pages of other origins (a hostile site riding
    # on a staff member's cookies), then authenticates from the session.
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
