"""Log formats: one line per event, plain (key=value fields after the message) or JSON
(PIZZAQ_LOG_FORMAT=json). Callers attach fields with ``extra=order_fields(...)``."""

import json
import logging
import time
from datetime import datetime, timezone

# The structured fields a log call may carry, in the order they are shown.
FIELDS = ("worker", "order", "kind", "attempt", "bucket", "elapsed")


def order_fields(worker: str, order, **more) -> dict:
    """The fields of one event about one run of an order."""
    return {"worker": worker, "order": str(order.pk), "kind": order.kind, "attempt": order.attempt,
            "bucket": order.bucket, **more}


def _fields(record: logging.LogRecord) -> dict:
    attributes = record.__dict__  # where ``extra`` puts them
    return {name: attributes[name] for name in FIELDS if name in attributes}


class LineFormatter(logging.Formatter):
    """``time LEVEL logger message worker=S1 order=... attempt=2 bucket=17``."""

    _second = (None, "")  # (a second, its time as the line shows it)

    def formatTime(self, record: logging.LogRecord, datefmt=None) -> str:
        # The time as logging's own formatter writes it, with its strftime done once a
        # second rather than once a line: a worker writes a line per order.
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached_second, shown = self._second
        if cached_second != second:
            shown = time.strftime(self.default_time_format, self.converter(second))
            self._second = (second, shown)
        return self.default_msec_format % (shown, record.msecs)

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
