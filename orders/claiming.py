"""Claiming: a worker takes ready orders, highest priority first, in one statement.

A worker claims many times a second, so a ``Claim`` builds its statement once: only the
time and the limit change from one claim to the next. Its rows become orders without
the ORM's per-query machinery, which cost more than the round trip itself.
"""

from datetime import datetime, timedelta, timezone as tz

from django.db import connection, transaction
from django.db.models import Exists, F, Q
from django.utils import timezone

from orders.models import Order, Status
from pizzaq import conf

# Stands for "now" while the statement is compiled; found again by identity among the
# compiled parameters, where each claim puts its own time.
_NOW = datetime(2000, 1, 1, tzinfo=tz.utc)


def claimable(worker: str, buckets, alive, now):
    """Ready orders this worker may take: its buckets' orders and those pinned to it."""
    mine = Q(pinned_to="") if buckets is None else Q(pinned_to="", bucket__in=buckets)
    pinned = Q(pinned_to=worker) if alive is None else Q(Exists(alive), pinned_to=worker)
    return Order.objects.ready(now).filter(mine | pinned).claim_order()


def first_lease(now):
    return now + timedelta(seconds=conf.get().visibility_timeout)


def claim_order_key(order: Order):
    return -order.priority, order.run_after, order.id


class Claim:
    """Claims for one worker. ``buckets`` (bucket numbers, or a subquery of them) limits
    them to the worker's own buckets; orders pinned to the worker are its own too, as long
    as the ``alive`` subquery finds a row (a worker declared dead owns no buckets, and
    this keeps it from taking a take-away order placed after its death)."""

    def __init__(self, worker: str, *, buckets=None, alive=None):
        self.worker, self.buckets, self.alive = worker, buckets, alive
        self._statement = _Statement(worker, buckets, alive) if connection.vendor == "postgresql" else None

    def __call__(self, limit: int) -> list[Order]:
        """Atomically take up to ``limit`` ready orders, in the order they should run."""
        if limit < 1:
            return []
        now = timezone.now()
        if self._statement is not None:
            claimed = self._statement.run(limit, now)
        else:
            claimed = self._claim_serialised(limit, now)
        return sorted(claimed, key=claim_order_key)

    def _claim_serialised(self, limit: int, now) -> list[Order]:
        # SQLite: the IMMEDIATE transaction holds the database's write lock from BEGIN, so
        # no other claimer can pick the same rows between our read and our write.
        with transaction.atomic():
            candidates = claimable(self.worker, self.buckets, self.alive, now)[:limit]
            ids = list(candidates.values_list("id", flat=True))
            Order.objects.filter(id__in=ids, status=Status.QUEUED).update(
                status=Status.RUNNING, worker=self.worker,
                # Every claim bumps the attempt: (worker, attempt) is the new fencing token.
                attempt=F("attempt") + 1, started_at=now, lease_expires_at=first_lease(now),
            )
            return list(Order.objects.filter(id__in=ids, worker=self.worker, status=Status.RUNNING))


class _Statement:
    """The PostgreSQL claim: one autocommit statement, one round trip. It locks the chosen
    rows, skipping rows another claimer holds, and flips them in the same statement.
    (Django compiles FOR UPDATE only inside atomic(), which would cost a BEGIN and a
    COMMIT round trip; one autocommit statement is atomic on its own.)"""

    def __init__(self, worker: str, buckets, alive):
        picked_sql, picked_params = claimable(worker, buckets, alive, _NOW).values("id").query.sql_with_params()
        self._now_at = [i for i, param in enumerate(picked_params) if param is _NOW]
        if not self._now_at:
            raise RuntimeError("the claim query lost track of its time parameter")
        fields = Order._meta.concrete_fields
        table = Order._meta.db_table
        returning = ", ".join(f"{table}.{connection.ops.quote_name(field.column)}" for field in fields)
        # MATERIALIZED: the pick runs exactly once. As a plain subquery the planner may
        # rescan it per row, and each rescan skips the rows just taken: more than `limit`.
        # The SET LOCALs: the one good plan walks the claim index in claim order and stops
        # after `limit` rows. When the statistics lag (a table that just grew from empty,
        # as at a rush) the planner prefers to fetch every queued row and sort them, which
        # costs time in proportion to the backlog on every claim. Sent in one string with
        # the claim, they run in its implicit transaction: one round trip, and they end
        # with it.
        self._sql = (
            "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; "
            f"WITH picked AS MATERIALIZED ({picked_sql} LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" UPDATE {table} SET status = %s, worker = %s, attempt = {table}.attempt + 1,"
            # Every claim bumps the attempt: (worker, attempt) is the new fencing token.
            f" started_at = %s, lease_expires_at = %s FROM picked"
            f" WHERE {table}.id = picked.id AND {table}.status = %s RETURNING {returning}"
        )
        self._picked_params = list(picked_params)
        self._worker = worker
        # JSON columns arrive as text; the rest as the Python values Order holds.
        self._converters = [(i, field.from_db_value) for i, field in enumerate(fields)
                            if hasattr(field, "from_db_value")]

    def run(self, limit: int, now) -> list[Order]:
        params = list(self._picked_params)
        for i in self._now_at:
            params[i] = now
        params += [limit, Status.RUNNING, self._worker, now, first_lease(now), Status.QUEUED]
        with connection.cursor() as cursor:
            cursor.execute(self._sql, params)
            while cursor.nextset():  # past the SETs' empty results to the claim's rows
                pass
            rows = cursor.fetchall()
        return [self._order(list(row)) for row in rows]

    def _order(self, values: list) -> Order:
        for i, convert in self._converters:
            values[i] = convert(values[i], None, connection)
        return Order.from_row(values, connection.alias)
