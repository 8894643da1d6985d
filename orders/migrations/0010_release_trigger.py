"""The release of waiting orders: the one home of the rule, as a trigger, so that every
path that finishes an order (the worker's batch UPDATE, a failure, a TTL, a cancel, the
admin) releases what waits for it in its own transaction, and no one polls.

When an order with ``has_dependents`` becomes finished, each waiting order placed after it
counts one fewer unfinished order to wait for: at none it becomes queued; if the finished
order did not end done and the waiting one was placed with the policy "cancel", it ends
cancelled now, naming the order. A cancelled order that others wait for releases them in
turn (a chain ends as a whole). Waiting orders are counted down by an UPDATE of their
own rows, so two orders finishing at once in two transactions are counted one after the
other, never both against the same old count.
"""

from django.db import migrations

FINISHED = "('done', 'dead', 'expired', 'cancelled')"
UNFINISHED = "('waiting', 'queued', 'running')"
# Idle workers wake for released orders as for placed ones (orders.notify.ORDERS_CHANNEL,
# written here as it was when this migration was made).
ORDERS_CHANNEL = "pizzaq_orders"

POSTGRESQL = f"""
CREATE FUNCTION pizzaq_release_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    released integer;
BEGIN
    WITH counted AS (
        UPDATE orders_order AS o SET
            waiting_for = o.waiting_for - 1,
            status = CASE WHEN NEW.status <> 'done' AND d.policy = 'cancel' THEN 'cancelled'
                          WHEN o.waiting_for <= 1 THEN 'queued' ELSE 'waiting' END,
            finished_at = CASE WHEN NEW.status <> 'done' AND d.policy = 'cancel'
                               THEN clock_timestamp() END,
            last_error = CASE WHEN NEW.status <> 'done' AND d.policy = 'cancel'
                              THEN 'order ' || NEW.id || ' it waited for ended ' || NEW.status
                              ELSE o.last_error END
        FROM orders_dependency AS d
        WHERE d.on_id = NEW.id AND o.id = d.waiting_id AND o.status = 'waiting'
        RETURNING o.status
    )
    SELECT count(*) INTO released FROM counted WHERE status = 'queued';
    IF released > 0 THEN
        PERFORM pg_notify(TG_ARGV[0], '');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER pizzaq_release_waiting AFTER UPDATE OF status ON orders_order
    FOR EACH ROW WHEN (NEW.has_dependents AND OLD.status IN {UNFINISHED} AND NEW.status IN {FINISHED})
    EXECUTE FUNCTION pizzaq_release_waiting('{ORDERS_CHANNEL}');
"""
POSTGRESQL_UNDO = """
DROP TRIGGER pizzaq_release_waiting ON orders_order;
DROP FUNCTION pizzaq_release_waiting();
"""

# SQLite stores a UUID as 32 hex digits: the reason shows it as PostgreSQL does. Every
# SET expression reads the row as it was, as in PostgreSQL. A chain's next link fires
# this trigger from inside itself: orders.apps turns on SQLite's recursive_triggers.
_DASHED = "||'-'||".join(f"substr(NEW.id, {start}, {length})"
                          for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))
_CANCELS = ("(NEW.status <> 'done' AND (SELECT d.policy FROM orders_dependency AS d"
            " WHERE d.on_id = NEW.id AND d.waiting_id = orders_order.id) = 'cancel')")
SQLITE = f"""
CREATE TRIGGER pizzaq_release_waiting AFTER UPDATE OF status ON orders_order
FOR EACH ROW WHEN NEW.has_dependents AND OLD.status IN {UNFINISHED} AND NEW.status IN {FINISHED}
BEGIN
    UPDATE orders_order SET
        waiting_for = waiting_for - 1,
        status = CASE WHEN {_CANCELS} THEN 'cancelled' WHEN waiting_for <= 1 THEN 'queued' ELSE 'waiting' END,
        finished_at = CASE WHEN {_CANCELS} THEN strftime('%Y-%m-%d %H:%M:%f', 'now') END,
        last_error = CASE WHEN {_CANCELS} THEN 'order ' || {_DASHED} || ' it waited for ended ' || NEW.status
                          ELSE last_error END
    WHERE status = 'waiting' AND id IN (SELECT waiting_id FROM orders_dependency WHERE on_id = NEW.id);
END;
"""
SQLITE_UNDO = "DROP TRIGGER pizzaq_release_waiting;"


def create(apps, schema_editor):
    sql = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    schema_editor.execute(sql, None)


def drop(apps, schema_editor):
    sql = POSTGRESQL_UNDO if schema_editor.connection.vendor == "postgresql" else SQLITE_UNDO
    schema_editor.execute(sql, None)


class Migration(migrations.Migration):
    dependencies = [("orders", "0009_dependencies_progress")]
    operations = [migrations.RunPython(create, drop)]
