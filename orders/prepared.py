"""A cursor for the statements a queue runs thousands of times a second: PostgreSQL
parses and plans each of them once per connection, not once per call.

Django binds values on the client: it inlines them into the statement's text, so every
call is a new statement to parse and plan. For the INSERT that places one order that was
a third of PostgreSQL's time. This cursor sends the values apart from the statement
(server-side binding), and psycopg then prepares the statement on its connection, as
the database's ``prepare_threshold`` option allows (pizzaq's settings turn it on; None
turns it off, for a connection pooler that cannot keep prepared statements). Only
cursors made here are prepared: the ORM's cursors bind on the client and never are.
"""

from django.db import connection
from django.db.backends.postgresql.base import ServerBindingCursor


def prepared_cursor():
    """A cursor on the default connection, wrapped (and logged) as Django wraps its own."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        raw = ServerBindingCursor(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
