"""Binary COPY: rows streamed into a table with no SQL to build or parse per row and no
text to format, sent by a second thread (psycopg's queued writer) while this one goes on."""

from functools import lru_cache

from django.db import connection
from psycopg.copy import QueuedLibpqWriter

# PostgreSQL's type for each kind of field pizzaq's models have: binary COPY needs them exactly.
_COPY_TYPES = {
    "UUIDField": "uuid", "CharField": "text", "TextField": "text", "JSONField": "jsonb",
    "SmallIntegerField": "int2", "IntegerField": "int4", "DateTimeField": "timestamptz",
    "BooleanField": "bool", "FloatField": "float8",
}


@lru_cache(maxsize=8)
def _statement(model, fields: tuple[str, ...]) -> tuple[str, list[str]]:
    columns = [model._meta.get_field(name) for name in fields]
    # A foreign key is written as the column it holds: the type of the key it points at.
    types = [_COPY_TYPES[(field.target_field if field.is_relation else field).get_internal_type()]
             for field in columns]
    quoted = ", ".join(connection.ops.quote_name(field.column) for field in columns)
    return f"COPY {model._meta.db_table} ({quoted}) FROM STDIN (FORMAT BINARY)", types


def copy_in(model, fields: tuple[str, ...], rows, meanwhile=lambda: None):
    """Write ``rows`` (values of ``fields``, in that order) into ``model``'s table, inside
    the caller's transaction; what ``meanwhile()`` returns, run while the rows are sent."""
    statement, types = _statement(model, fields)
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(statement, writer=QueuedLibpqWriter(raw)) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
            return meanwhile()
