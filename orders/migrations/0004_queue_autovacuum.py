"""Autovacuum settings for a table that turns over all day (PostgreSQL only; see
docs/deployment.md). The defaults wait until a fifth of a table is dead, by which time the
claim walks past many dead index entries and the planner's row counts are stale."""

from django.db import migrations

TUNED = (
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,"
    " autovacuum_analyze_scale_factor = 0.02, autovacuum_analyze_threshold = 1000,"
    " autovacuum_vacuum_cost_limit = 2000"
)
DEFAULTS = (
    "autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_analyze_scale_factor,"
    " autovacuum_analyze_threshold, autovacuum_vacuum_cost_limit"
)


def tune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE orders_order SET ({TUNED})")


def untune(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE orders_order RESET ({DEFAULTS})")


class Migration(migrations.Migration):
    dependencies = [("orders", "0003_prunedtally")]
    operations = [migrations.RunPython(tune, untune)]
