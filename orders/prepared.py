"""A cursor for the statements a queue runs thousands of times a second: PostgreSQL
parses and plans each of them once per connection, not once per call.

Django binds values on the client: it inlines them into the statement's text, so every
call is a new statement to parse and plan. For the INSERT that places one order that was
a third of PostgreSQL's time. This is psycopg's own server-binding cursor on Django's
connection: it sends the values apart from the statement, and psycopg prepares the
statement on its connection, as the database's ``prepare_threshold`` option allows
(pizzaq's settings turn it on; None turns it off, for a connection pooler that cannot
keep prepared statements). Only cursors made here are prepared: the ORM's bind on the
client and never are. Their statements run in Django's transactions but are not logged
in ``connection.queries``.

Each thread keeps its cursor for as long as its connection lasts: making a cursor (and
the adapters it copies from its connection) cost a claim of 16 orders as much as reading
them. Times are decoded by psycopg's compiled loader, in the session's time zone, UTC
(Django sets it): Django's own loader, in Python, then puts UTC on each time again, and
cost a third of a claimed order's time in the worker.
"""

import re
import threading
from contextlib import contextmanager

import psycopg
from django.db import connection
from psycopg.types.datetime import TimestamptzLoader

_kept = threading.local()


@contextmanager
def prepared_cursor():
    """A server-binding cursor on the default connection; errors come out as Django's."""
    # As before any query: a connection that failed its health check is replaced, one is
    # opened if there is none, and it is this thread's.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        yield _cursor_on(connection.connection)


def _cursor_on(raw: psycopg.Connection) -> psycopg.Cursor:
    """This thread's cursor on ``raw``, made the first time it is asked for."""
    kept = getattr(_kept, "cursor", None)
    if kept is None or kept.connection is not raw or kept.closed:
        kept = _kept.cursor = psycopg.Cursor(raw)
        kept.adapters.register_loader("timestamptz", TimestamptzLoader)
    return kept


_SETTING_NAME = re.compile("[a-z_]+")


def local_settings(**settings: str) -> str:
    """A statement that sets planner ``settings`` until the end of its transaction. The hot
    statements are planned once per connection, without their values, and on statistics
    that can be far from the truth (a table not analyzed yet, or last analyzed before a
    rush); these settings leave the planner only the plan that is right for every size."""
    for name, value in settings.items():
        if not (_SETTING_NAME.fullmatch(name) and _SETTING_NAME.fullmatch(value)):
            raise ValueError(f"not a planner setting: {name}={value!r}")
    return "SELECT " + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in settings.items())


def execute_planned(cursor: psycopg.Cursor, plan_settings: str, sql: str, params) -> list[tuple]:
    """Run ``sql`` under ``plan_settings`` (from ``local_settings``) in one round trip, and
    return its rows. Both go out together (a pipeline) and, in autocommit, run in one
    implicit transaction, at whose end the settings lapse (inside a caller's transaction
    they last until it ends). The rows are read once the pipeline has ended: reading them
    inside it costs a second sync."""
    with cursor.connection.pipeline():
        cursor.execute(plan_settings)
        cursor.execute(sql, params)
    return cursor.fetchall()
