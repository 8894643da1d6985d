"""Log formats: one line per event, plain (key=value fields after the message) or JSON
(PIZZAQ_LOG_FORMAT=json). Callers attach fields with ``extra=order_fields(...)``."""

import json
import logging
from datetime import datetime, timezone

# The structured fields a log call may carry, in the order they are shown.
FIELDS = ("worker", "order", "kind", "attempt", "bucket", "elapsed")


def order_fields(worker: str, order, **more) -> dict:
    """The fields of one event about one run of an order."""
    return {"worker": worker, "order": str(order.pk), "kind": order.kind, "attempt": order.attempt,
            "bucket": order.bucket, **more}


def _fields(record: logging.LogRecord) -> dict:
    return {name: getattr(record, name) for name in FIELDS if hasattr(record, name)}


class LineFormatter(logging.Formatter):
    """``time LEVEL logger message worker=S1 order=... attempt=2 bucket=17``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{name}={value}" for name, value in _fields(record).items())
        line = super().format(record)
        return f"{line} {fields}" if fields else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the structured fields,
    and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(), **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
