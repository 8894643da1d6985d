"""The smallest Django project that runs django-tasks-db (Django's Tasks framework with
its database backend) against the bench database in BENCH_DATABASE_URL."""

import os
from urllib.parse import urlsplit

_url = urlsplit(os.environ["BENCH_DATABASE_URL"])

SECRET_KEY = "bench-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["django_tasks_db"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "postgres",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname,
        "PORT": _url.port or 5432,
        # As pizzaq's own settings do: keep the connection between jobs.
        "CONN_MAX_AGE": 60,
    }
}
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
