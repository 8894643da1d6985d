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
"""

from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def prepared_cursor():
    """A server-binding cursor on the default connection; errors come out as Django's."""
    # Django's own cursor first: it connects, checks the connection's health and the
    # thread, as for any query.
    with connection.cursor():
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            yield cursor
