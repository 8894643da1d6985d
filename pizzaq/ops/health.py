"""Liveness and readiness: is this process up, and can it serve the queue right now?"""

from django.db import DEFAULT_DB_ALIAS, Error, connections
from django.db.migrations.executor import MigrationExecutor

from workers import leadership


def check_database() -> str:
    """'' if the database answers, else why not."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Error as error:
        return f"database unreachable: {str(error).strip() or type(error).__name__}"
    return ""


def check_migrations() -> str:
    """'' if every migration is applied, else which are not."""
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return ""
    names = ", ".join(f"{migration.app_label}.{migration.name}" for migration, _ in plan)
    return f"{len(plan)} migrations not applied ({names}): run manage.py migrate"


def readiness() -> dict:
    """Each check with ok and, when not ok, a reason. Without the database nothing else
    can be checked."""
    checks = {"database": check_database()}
    if not checks["database"]:
        checks["migrations"] = check_migrations()
        checks["notifier"] = leadership.leader_problem()
    return {name: {"ok": True} if not reason else {"ok": False, "reason": reason} for name, reason in checks.items()}
