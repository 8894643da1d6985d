"""ASGI entry point: HTTP through Django; websockets join in with the dashboard."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pizzaq.settings")

application = get_asgi_application()
