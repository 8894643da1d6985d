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

import itertools
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
_PLACEHOLDER = re.compile("%%|%s")
_explained = itertools.count()


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


def explain_planned(cursor, plan_settings: str, sql: str, params, options: str) -> str:
    """How PostgreSQL runs ``sql`` as the hot path runs it: under ``plan_settings``, prepared
    (EXPLAIN EXECUTE: the plan a prepared statement keeps, not one made for these values),
    with the EXPLAIN ``options`` (e.g. "ANALYZE, BUFFERS": then it runs for real, and the
    caller's transaction must undo it). ``cursor``: a Django cursor, in that transaction."""
    name = f"pizzaq_explained_{next(_explained)}"
    numbers = (f"${n}" for n in itertools.count(1))
    # PREPARE's text goes out as it is: placeholders become $1, $2, ... and an escaped
    # percent sign (in a literal) a plain one, as psycopg does for the statement itself.
    numbered = _PLACEHOLDER.sub(lambda found: "%" if found[0] == "%%" else next(numbers), sql)
    cursor.execute(plan_settings)
    cursor.execute(f"PREPARE {name} AS {numbered}")
    cursor.execute(f"EXPLAIN ({options}) EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
    plan = "\n".join(row[0] for row in cursor.fetchall())
    cursor.execute(f"DEALLOCATE {name}")
    return plan
