"""Tiny tables rewritten on every heartbeat and notifier tick: vacuum them after a couple
of hundred dead rows rather than after a fifth of the table (PostgreSQL only)."""

from django.db import migrations

TABLES = ("workers_worker", "workers_notifierlease")


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(
                f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 200)")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} RESET (autovacuum_vacuum_scale_factor, "
                                  "autovacuum_vacuum_threshold)")


class Migration(migrations.Migration):
    dependencies = [("workers", "0004_drop_unused_fields")]
    operations = [migrations.RunPython(tune, untune)]
