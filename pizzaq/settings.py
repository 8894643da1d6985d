"""Django settings for pizzaq, read from the environment with django-environ."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from orders.conf import PizzaqConf, overrides_from_environ

BASE_DIR = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "pizzaq-development-only-secret-key-change-me"

env = environ.Env(
    DEBUG=(bool, True),
    SECRET_KEY=(str, DEV_SECRET_KEY),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
)

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is the development default; set a long random SECRET_KEY for production")

# Production hardening, all from the environment. ALLOWED_HOSTS also decides which
# origins may open the dashboard's websocket.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
if env.bool("SECURE_PROXY_SSL", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Our apps come first: channels ships its own `runworker`, and the first app that
# defines a command wins.
INSTALLED_APPS = [
    "workers",
    "orders",
    # This project itself: the dashboard's templates and the demo's commands.
    "pizzaq",
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the project's own scripts and stylesheets (no CDN), also under daphne.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pizzaq.urls"
ASGI_APPLICATION = "pizzaq.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database():
    """PostgreSQL from DATABASE_URL, else an embedded SQLite file tuned for many processes."""
    sqlite_path = env("PIZZAQ_SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3"))
    database = env.db_url("DATABASE_URL", default=f"sqlite:///{sqlite_path}")
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database["OPTIONS"] = {
            # Several processes write at once: WAL lets readers run beside the writer,
            # IMMEDIATE takes the write lock at BEGIN so a claim never fails half-way.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        # Tests start real worker processes, so the test database must be a file.
        database["TEST"] = {"NAME": str(Path(database["NAME"]).with_suffix(".test.sqlite3"))}
    else:
        _postgresql_options(database)
    return database


def _postgresql_options(database):
    options = database.setdefault("OPTIONS", {})
    for name, value in DATABASE_CONNECTION_GUARDS.items():
        options.setdefault(name, value)  # what DATABASE_URL says itself wins
    # The hot statements (placing, claiming, completing) are prepared on each connection
    # the first time they run (orders/prepared.py); False for a pooler that cannot keep
    # prepared statements (PgBouncer before 1.21 in transaction mode).
    prepared = env.bool("DATABASE_PREPARED_STATEMENTS", default=not DATABASE_TRANSACTION_POOLER)
    options["prepare_threshold"] = 0 if prepared else None
    # A named cursor (.iterator(), which /metrics uses) would outlive its transaction.
    database["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_TRANSACTION_POOLER
    if pool_size := env.int("DATABASE_POOL_SIZE", default=0):
        # A process that serves each request on a thread of its own (daphne) would open a
        # connection per request, since Django's connections belong to threads: a pool
        # hands out open ones instead. (Pooled connections go back at each request's end.)
        options["pool"] = {"min_size": min(2, pool_size), "max_size": pool_size, "timeout": 10}
        database["CONN_MAX_AGE"] = 0
    else:
        database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        database["CONN_HEALTH_CHECKS"] = True


def _connection_guards() -> dict:
    """libpq settings that keep a call from hanging when the database or the network to it
    silently goes away (a partition drops packets: no reset, no error), so a worker notices
    within about two heartbeats and rides the outage out instead of waiting for ever."""
    heartbeat = float(PIZZAQ.get("heartbeat_interval", PizzaqConf.heartbeat_interval))
    return {
        "connect_timeout": env.int("DATABASE_CONNECT_TIMEOUT", default=max(2, round(2 * heartbeat))),
        # An idle connection is probed; one whose sent data stays unacknowledged this long
        # (its peer is gone) is closed by the kernel, probes included.
        "keepalives": 1,
        "keepalives_idle": max(1, round(heartbeat)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": env.int("DATABASE_TCP_USER_TIMEOUT", default=max(1000, round(2000 * heartbeat))),
    }


# The demo's menu of handlers (bake, noop, flaky, ...) is this project's, on top of the
# apps' own default (Django tasks).
PIZZAQ = {"handler_modules": ("pizzaq.menu", "orders.tasks_backend"), **overrides_from_environ()}
# Periodic orders the demo's notifier places (`make run` turns them on; any other notifier
# of this project removes them again, as it would any schedule its settings drop).
DEMO_SCHEDULES = {
    "dough-check": {"every": 30, "kind": "noop", "payload": {"check": "the dough is proofing"}},
    "nightly-clean": {"cron": "0 3 * * *", "kind": "noop", "payload": {"clean": "the ovens"}, "catch_up": 0},
}
PIZZAQ_SCHEDULES = DEMO_SCHEDULES if env.bool("PIZZAQ_DEMO_SCHEDULES", default=False) else {}
# PgBouncer in transaction mode (or any transaction pooler) between us and PostgreSQL: no
# prepared statements, no startup options, and LISTEN goes to DATABASE_LISTEN_URL (the
# server itself) or, without one, workers poll.
DATABASE_TRANSACTION_POOLER = env.bool("DATABASE_TRANSACTION_POOLER", default=False)
# On every connection, the direct one for LISTEN too.
DATABASE_CONNECTION_GUARDS = _connection_guards()
DATABASE_LISTEN_URL = env.str("DATABASE_LISTEN_URL", default="")
# The longest statement a worker or notifier connection may run (seconds; 0: no limit).
DATABASE_STATEMENT_TIMEOUT = env.float("DATABASE_STATEMENT_TIMEOUT", default=60.0)


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
# Without collectstatic (development, tests), serve straight from the app folders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

LOGIN_URL = "/admin/login/"
# The largest request body read at all (a bulk placement); the API answers 413 above it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024 * 1024

# One line per event; PIZZAQ_LOG_FORMAT=json for log shippers (pizzaq/logformat.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"()": "orders.logformat.LineFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "orders.logformat.JsonFormatter"},
    },
    "handlers": {
        # Lines go out in batches, each at most PIZZAQ_LOG_FLUSH seconds late (0: each at once);
        # warnings and errors at once.
        "console": {"class": "orders.logformat.ConsoleHandler", "formatter": env.str("PIZZAQ_LOG_FORMAT", default="line"),
                    "flush_after": env.float("PIZZAQ_LOG_FLUSH", default=0.2)},
    },
    "loggers": {
        "pizzaq": {"handlers": ["console"], "level": env("PIZZAQ_LOG_LEVEL", default="INFO")},
        # psycopg warns once more, unformatted, when the database goes away under a claim's
        # pipeline ("error ignored terminating Pipeline"); pizzaq's own line already says so.
        "psycopg": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}

# Django's Tasks framework, run by pizzaq's workers (docs/tasks.md): each queue name is a
# pizzaq queue (runworker --queues). OPTIONS shows its default.
TASKS = {
    "default": {
        "BACKEND": "orders.tasks_backend.PizzaqBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"MAX_ATTEMPTS": 1},
    },
}
