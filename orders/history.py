"""Appending an attempt to an order's compact history inside the UPDATE that ends it,
so the hot path writes no extra rows."""

from django.db.models import DateTimeField, F, Func, JSONField, Value

# History outcomes of attempts that failed: the handler raised, the lease lapsed (a stuck
# run or a lost worker's last try), or a pinned order's shop closed. ("requeued" is not:
# the worker stopped or was lost, or a person sent the order back; the handler did not fail.)
FAILED_OUTCOMES = ("failed", "lapsed", "closed")


def append_sql_postgresql(history: str, worker: str, attempt: str, claimed: str, started: str,
                          ended: str = "%s::text") -> str:
    """SQL for ``history`` plus one entry; placeholders for outcome and error, and for
    ended unless ``ended`` is an expression (ISO 8601 text, as ``isoformat()`` writes)."""
    entry = (
        f"jsonb_build_object('worker', {worker}, 'attempt', {attempt}, 'claimed', {claimed}, 'started', {started},"
        f" 'ended', {ended}, 'outcome', %s::text, 'error', %s::text)"
    )
    return f"({history} || jsonb_build_array({entry}))"


class AppendAttempt(Func):
    """``history`` plus one entry built from the row's own worker, attempt and claim time
    (``started_at`` while it runs), so one UPDATE can end many attempts at once. The
    entry's ``started`` is when the handler really began, if ``started`` says so (an order
    claimed ahead waits for a thread), or else the claim time."""

    output_field = JSONField()

    def __init__(self, ended, outcome: str, error: str = "", started=None):
        began = F("started_at") if started is None else Value(started, output_field=DateTimeField())
        super().__init__(F("history"), F("worker"), F("attempt"), F("started_at"), began)
        self.extra_params = [ended.isoformat(), outcome, error[:500]]

    def as_sql(self, compiler, connection, **extra_context):
        parts, params = [], []
        for expression in self.source_expressions:
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        history, worker, attempt, claimed, started = parts
        if connection.vendor == "postgresql":
            return append_sql_postgresql(history, worker, attempt, claimed, started), (*params, *self.extra_params)
        entry = (
            f"json_object('worker', {worker}, 'attempt', {attempt}, 'claimed', {claimed}, 'started', {started},"
            " 'ended', %s, 'outcome', %s, 'error', %s)"
        )
        return f"json_insert({history}, '$[#]', {entry})", (*params, *self.extra_params)
