"""Claiming: a worker takes ready orders, highest priority first, in one statement.

A worker claims many times a second, so a ``Claim`` builds its statement once: only the
time and the limit change from one claim to the next. Its rows become orders without
the ORM's per-query machinery, which cost more than the round trip itself.
"""

import random
import re
import time
from datetime import datetime, timedelta, timezone as tz

from django.db import connection, transaction
from django.db.models import DEFERRED, Exists, F, Q, Value
from django.db.models.sql import Query
from django.utils import timezone

from orders import limits
from orders.models import Limit, Order, Queue, Status
from orders.prepared import execute_planned, explain_planned, local_settings, prepared_cursor
from orders import conf

# Stand for "now" and the first lease while the statement is compiled; found again by
# identity among the compiled parameters, where each claim binds its own times.
_NOW = datetime(2000, 1, 1, tzinfo=tz.utc)
_LEASE = datetime(2000, 1, 2, tzinfo=tz.utc)


# The one good plan walks the claim index in claim order, stops after `limit` rows, and
# finds each of them again by primary key. The plan is made once per connection (a
# generic plan: planning cost more than running the claim), without knowing the limit,
# for which the planner then guesses a tenth of the backlog; and when the statistics lag
# (a table that just grew from empty, as at a rush) it also misjudges the backlog. Either
# way it prefers plans whose cost grows with the backlog: fetch every queued row and sort
# them, or hash the whole table to join the picked rows. These settings, local to the
# claim's transaction, leave it the one good plan; and it never needs JIT compilation,
# which would cost more than a thousand claims.
_PLAN_SETTINGS = local_settings(enable_sort="off", enable_bitmapscan="off", enable_hashjoin="off",
                                enable_mergejoin="off", plan_cache_mode="force_generic_plan", jit="off")
# How often a worker looks whether any limit exists, and how often it claims limited
# orders even when ordinary ones fill its claims (so they are not starved): every 0.25 s
# while it finds some, backing off to every 5 s while it finds none; each wait drawn
# between half and all of that, so workers started together do not look all at once
# (a look holds the limits' lock).
LIMITS_RECHECK, LIMITED_EVERY, LIMITED_AT_MOST = 1.0, 0.25, 5.0
# How far down the claim order a worker looks for limited orders.
LIMITED_WINDOW = 1000
_PLAIN_WORD = re.compile("[a-z_]+")
# What a claim does not read back: a claimed order has no result, its progress is an
# earlier run's, and the rest is of no use to a run. Left deferred (as ``only()`` leaves
# fields), each is read from the database if a handler asks for it: a claimed order is
# built at the cost of the fields it carries, a good part of a worker's time per order.
NOT_READ_BACK = frozenset({"result", "progress_value", "progress_note", "progress_at", "waiting_for",
                           "has_dependents", "unique_key", "concurrency_key"})
READ_BACK = tuple(field for field in Order._meta.concrete_fields if field.name not in NOT_READ_BACK)
READ_BACK_NAMES = frozenset(field.attname for field in READ_BACK)


def claimable(worker: str, mine, alive, queues, now, *, queued=Status.QUEUED):
    """Ready orders this worker may take: unpinned orders ``mine`` lets it take (a Q; None:
    any) and those pinned to it, of the ``queues`` it serves (None: every queue) that are
    not paused; none at all once the ``alive`` subquery (None: no check) finds no row.
    (``queued``: how the statement names the queued status; see ``Written``.)"""
    unpinned = Q(pinned_to="") if mine is None else Q(mine, pinned_to="")
    ready = Order.objects.ready(now, queued=queued).filter(unpinned | Q(pinned_to=worker))
    ready = ready.exclude(queue__in=Queue.objects.paused())
    if alive is not None:
        ready = ready.filter(Exists(alive))
    if queues is not None:
        ready = ready.filter(queue__in=sorted(queues))
    return ready.claim_order()


class Written(Value):
    """A constant written into the statement's text instead of bound. PostgreSQL keeps one
    plan for the claim, made without its parameters' values, and can use the claim index
    (which holds queued orders only) only if the statement itself says ``'queued'``."""

    def as_sql(self, compiler, connection):
        if not _PLAIN_WORD.fullmatch(self.value):
            raise ValueError(f"only plain words are written into SQL, not {self.value!r}")
        return f"'{self.value}'", []


def first_lease(now):
    return now + timedelta(seconds=conf.get().visibility_timeout)


def claimed(worker: str, now, lease) -> dict:
    """What a claim writes, on every database: the one rule of a claim. The order runs from
    ``now``, for ``worker``, under a new fencing token (every claim bumps the attempt:
    (worker, attempt) is the new token), with its first lease until ``lease``."""
    return {"status": Status.RUNNING, "worker": worker, "attempt": F("attempt") + 1,
            "started_at": now, "lease_expires_at": lease}


# Of the fields read back, the claim knows the constants it writes (its status, worker
# and times; see ``claimed``) without reading them: the rest is what its statement returns.
WRITTEN = frozenset(name for name, value in claimed("", _NOW, _LEASE).items()
                    if not hasattr(value, "resolve_expression"))
RETURNED = tuple(field for field in READ_BACK if field.name not in WRITTEN)


def claim_order_key(order: Order):
    return -order.priority, order.run_after, order.id


class Claim:
    """Claims for one worker. ``mine`` (a Q over orders) limits the unpinned orders to the
    worker's own share (its buckets); orders pinned to the worker are its own too. It
    claims only as long as the ``alive`` subquery finds a row: a worker declared dead
    takes nothing, neither a take-away order placed after its death nor, if it was the
    last one alive, the orders of the buckets that wait for the next worker to join (it
    could only run them to have its results discarded, and them run again). Either way
    only orders of the ``queues`` it serves (None: all)."""

    def __init__(self, worker: str, *, mine=None, alive=None, queues=None):
        self.worker, self.mine, self.alive, self.queues = worker, mine, alive, queues
        self._statement = _Statement(worker, mine, alive, queues) if connection.vendor == "postgresql" else None
        self._limits_seen_at, self._limits_exist = -LIMITS_RECHECK, False
        self._limited_at, self._limited_every = -LIMITED_AT_MOST, LIMITED_EVERY
        self._limited_backoff = LIMITED_EVERY

    def __call__(self, limit: int) -> list[Order]:
        """Atomically take up to ``limit`` ready orders, in the order they should run.
        Orders under a limit are claimed apart (``limits``): on a timer, before the others,
        so a stream of ordinary orders cannot starve them; and after the others when they
        leave room, at most every LIMITED_EVERY s."""
        if limit < 1:
            return []
        now = timezone.now()
        limits_on = self._limits_on()
        timer_due = limits_on and time.monotonic() - self._limited_at >= self._limited_every
        taken = self._claim_limited(limit) if timer_due else []
        if len(taken) < limit:
            taken += self._statement.run(limit - len(taken), now) if self._statement is not None \
                else self._claim_serialised(limit - len(taken), now)
        if (limits_on and not timer_due and len(taken) < limit
                and time.monotonic() - self._limited_at >= LIMITED_EVERY):
            taken += self._claim_limited(limit - len(taken))
        return sorted(taken, key=claim_order_key)

    def _limits_on(self) -> bool:
        """Whether any limit exists, looked up every LIMITS_RECHECK s. (Whatever this knows,
        the ordinary claim leaves limited orders out at once.)"""
        moment = time.monotonic()
        if moment - self._limits_seen_at >= LIMITS_RECHECK:
            self._limits_exist, self._limits_seen_at = Limit.objects.exists(), moment
        return self._limits_exist

    def _claim_limited(self, free: int) -> list[Order]:
        """Claim orders under a limit. Finding none, the next look on the timer comes later
        (up to LIMITED_AT_MOST s): a look takes the limits' lock and reads the head of the
        queue, which a worker draining a backlog of others should not do many times a
        second."""
        self._limited_at = time.monotonic()
        taken = self._take_limited(free)
        backoff = LIMITED_EVERY if taken else min(LIMITED_AT_MOST, self._limited_backoff * 4)
        self._limited_backoff, self._limited_every = backoff, backoff * random.uniform(0.5, 1.0)
        return taken

    def _take_limited(self, free: int) -> list[Order]:
        def candidates(now, full: Q):
            # The first LIMITED_WINDOW orders this worker could run, limited or not, but for
            # the groups at their limit (``full``): a limited order further back waits its
            # turn in priority order like any other, and a look costs the same however long
            # the backlog is.
            return claimable(self.worker, self.mine, self.alive, self.queues, now).exclude(full)[:LIMITED_WINDOW]

        return limits.claim_limited(candidates, free, self._take)

    def explain(self, limit: int) -> str:
        """How PostgreSQL runs this claim now: its plan with timings and buffers (EXPLAIN
        ANALYZE). Nothing stays claimed: the claim runs in a transaction rolled back."""
        if self._statement is None:
            raise NotImplementedError("explaining the claim needs PostgreSQL")
        return self._statement.explain(limit, timezone.now())

    def _claim_serialised(self, limit: int, now) -> list[Order]:
        # SQLite: the IMMEDIATE transaction holds the database's write lock from BEGIN, so
        # no other claimer can pick the same rows between our read and our write.
        with transaction.atomic():
            candidates = claimable(self.worker, self.mine, self.alive, self.queues, now).exclude(limits.covered())[:limit]
            return self._take(list(candidates.values_list("id", flat=True)), now)

    def _take(self, ids: list, now) -> list[Order]:
        """Claim the orders ``ids`` that are still queued, inside the caller's transaction
        (which holds what keeps other claimers off them)."""
        Order.objects.filter(id__in=ids, status=Status.QUEUED).update(**claimed(self.worker, now, first_lease(now)))
        return list(Order.objects.filter(id__in=ids, worker=self.worker, status=Status.RUNNING))


class _Statement:
    """The PostgreSQL claim: one prepared statement, one round trip. It locks the chosen
    rows, skipping rows another claimer holds, and flips them in the same statement.
    (Django compiles FOR UPDATE only inside atomic(), which would cost a BEGIN and a
    COMMIT round trip; one autocommit statement is atomic on its own.) The pick and the
    SET list are the ORM's own SQL, with their parameters bound as they are; only the
    times change from one claim to the next, found among them by identity."""

    def __init__(self, worker: str, mine, alive, queues):
        picked = (claimable(worker, mine, alive, queues, _NOW, queued=Written(Status.QUEUED))
                  .exclude(limits.covered()).values("id"))
        picked_sql, picked_params = picked.query.sql_with_params()
        table = Order._meta.db_table
        returning = ", ".join(f"{table}.{connection.ops.quote_name(field.column)}" for field in RETURNED)
        assignments, set_params = _set_clause(claimed(worker, _NOW, _LEASE))
        # MATERIALIZED: the pick runs exactly once. As a plain subquery the planner may
        # rescan it per row, and each rescan skips the rows just taken: more than `limit`.
        # The UPDATE finds the picked rows by primary key alone. FOR UPDATE has already
        # checked, on each row's latest version, that it is queued, and holds it locked, so
        # a second status test adds nothing, and with statistics that say few orders are
        # queued it lured the planner into looking each row up in the claim index, whose
        # leading columns are not the id: a walk of the whole backlog per picked row.
        self._sql = (
            f"WITH picked AS MATERIALIZED ({picked_sql} LIMIT %s FOR UPDATE SKIP LOCKED)"
            f" UPDATE {table} SET {assignments} FROM picked"
            f" WHERE {table}.id = picked.id RETURNING {returning}"
        )
        self._picked_params, self._set_params = tuple(picked_params), tuple(set_params)
        # The constants the claim writes, its times found again by identity as in _params.
        self._written = {name: value for name, value in claimed(worker, _NOW, _LEASE).items() if name in WRITTEN}
        if not any(param is _NOW for param in self._picked_params):
            raise RuntimeError("the claim query lost track of its time parameter")

    def run(self, limit: int, now) -> list[Order]:
        lease = first_lease(now)
        with prepared_cursor() as cursor:
            rows = execute_planned(cursor, _PLAN_SETTINGS, self._sql, self._params(limit, now, lease))
        written = dict(zip(self._written, _at_times(self._written.values(), now, lease)))
        return _orders(rows, written)

    def explain(self, limit: int, now) -> str:
        with transaction.atomic(), connection.cursor() as cursor:
            plan = explain_planned(cursor, _PLAN_SETTINGS, self._sql, self._params(limit, now, first_lease(now)),
                                   "ANALYZE, BUFFERS")
            transaction.set_rollback(True)  # EXPLAIN ANALYZE claimed for real: undo it
        return plan

    def _params(self, limit: int, now, lease) -> list:
        return [*_at_times(self._picked_params, now, lease), limit, *_at_times(self._set_params, now, lease)]


def _at_times(values, now, lease) -> list:
    """``values`` compiled with the stand-in times, with this claim's times in their place."""
    times = {id(_NOW): now, id(_LEASE): lease}
    return [times.get(id(value), value) for value in values]


def _orders(rows, written: dict) -> list[Order]:
    """Claimed rows (the RETURNED fields) as Orders, through ``Model.from_db`` as any
    query's rows: the constants the claim ``written`` (its status, worker, times) filled in
    rather than read back, the fields not read back marked DEFERRED (placed here from a
    template: cheaper than from_db's own look-up of each field's name). JSON columns
    arrive as text and are decoded as the ORM decodes them."""
    template = _DEFERRED_ROW.copy()
    for name, position in _WRITTEN_POSITIONS.items():
        value = written[name]
        # A choice (the status) as the plain string a row holds.
        template[position] = str(value) if isinstance(value, str) else value
    alias, orders = connection.alias, []
    for row in rows:
        values = template.copy()
        for position, value in zip(_RETURNED_POSITIONS, row):
            values[position] = value
        for position, convert in _CONVERTERS:
            values[position] = convert(values[position], None, connection)
        orders.append(Order.from_db(alias, READ_BACK_NAMES, values))
    return orders


_DEFERRED_ROW = [DEFERRED] * len(Order._meta.concrete_fields)
_RETURNED_POSITIONS = [Order._meta.concrete_fields.index(field) for field in RETURNED]
_WRITTEN_POSITIONS = {field.name: Order._meta.concrete_fields.index(field) for field in READ_BACK
                      if field.name in WRITTEN}
_CONVERTERS = [(position, field.from_db_value) for position, field in zip(_RETURNED_POSITIONS, RETURNED)
               if hasattr(field, "from_db_value")]


def _set_clause(fields: dict) -> tuple[str, list]:
    """The SET list of a claim's UPDATE, from ``claimed``: each value compiled by the ORM
    (an expression by its own ``as_sql``), with its parameters."""
    query = Query(Order)
    compiler = query.get_compiler(connection=connection)
    assignments, params = [], []
    for name, value in fields.items():
        column = connection.ops.quote_name(Order._meta.get_field(name).column)
        if hasattr(value, "resolve_expression"):
            sql, value_params = value.resolve_expression(query).as_sql(compiler, connection)
        else:
            sql, value_params = "%s", [value]
        assignments.append(f"{column} = {sql}")
        params += value_params
    return ", ".join(assignments), params
