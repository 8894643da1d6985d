"""Liveness and readiness: is this process up, and can it serve the queue right now?"""

from django.db import DEFAULT_DB_ALIAS, Error, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from pizzaq import conf
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


def check_notifier(now=None) -> str:
    """'' if a notifier led recently, else why no one watches the workers.

    Recently: its lease ran out no longer than a worker timeout ago, which leaves a
    standby the time it needs to take over."""
    now = now or timezone.now()
    lease = leadership.current_leader()
    if lease is None or not lease[0]:
        return "no notifier leader has ever been seen: start manage.py notifier"
    holder, expires_at = lease
    silent = (now - expires_at).total_seconds()
    if silent > conf.get().worker_timeout:
        return (f"no notifier leader seen for {silent:.0f} s (the last was {holder}): "
                "dead workers are not being detected")
    return ""


def readiness() -> dict:
    """Each check with ok and, when not ok, a reason. Without the database nothing else
    can be checked."""
    checks = {"database": check_database()}
    if not checks["database"]:
        checks["migrations"] = check_migrations()
        checks["notifier"] = check_notifier()
    return {name: {"ok": True} if not reason else {"ok": False, "reason": reason} for name, reason in checks.items()}
