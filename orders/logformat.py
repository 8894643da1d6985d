"""Log lines: one line per event, plain (key=value fields after the message) or JSON
(PIZZAQ_LOG_FORMAT=json), and the console handler that writes them a batch at a time.
Callers attach fields with ``extra=order_fields(...)``."""

import json
import logging
import os
import threading
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


class ConsoleHandler(logging.StreamHandler):
    """The console, written a batch of lines at a time: each line at most ``flush_after``
    seconds after it was logged, and a WARNING or worse at once, with the lines held before
    it. At the default level a worker logs a line per order; written one at a time, each
    line was a write and a flush, and the thread writing gave way to the others at every
    one. A clean stop writes what is held (``logging.shutdown`` flushes every handler); a
    hard kill loses at most the last ``flush_after`` seconds of INFO lines. ``flush_after``
    0: every line at once, as ``logging.StreamHandler`` writes it."""

    def __init__(self, stream=None, flush_after: float = 0.2, max_held: int = 256):
        super().__init__(stream)
        self.flush_after, self.max_held = flush_after, max_held
        self._held: list[str] = []
        self._oldest = 0.0  # when the oldest line held was logged (time.monotonic)
        self._flusher_pid = None  # the process whose flusher runs (a fork has none)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._held.append(self.format(record))
            if len(self._held) == 1:
                self._oldest = time.monotonic()
                if self.flush_after > 0:
                    self._start_flusher()
            if (record.levelno >= logging.WARNING or len(self._held) >= self.max_held
                    or time.monotonic() - self._oldest >= self.flush_after):
                self._write_held()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        with self.lock:
            if self._held:
                self._write_held()
            super().flush()

    def _write_held(self) -> None:
        held, self._held = self._held, []
        self.stream.write(self.terminator.join(held) + self.terminator)
        self.stream.flush()

    def _start_flusher(self) -> None:
        if self._flusher_pid != os.getpid():
            self._flusher_pid = os.getpid()
            threading.Thread(target=self._flush_when_due, name="pizzaq-log-flusher", daemon=True).start()

    def _flush_when_due(self) -> None:
        # Lines logged just before a quiet spell go out by this thread's hand, when the
        # oldest of them is due.
        while True:
            with self.lock:
                due = self._oldest + self.flush_after if self._held else None
                if due is not None and time.monotonic() >= due:
                    try:
                        self._write_held()
                    except Exception:
                        pass  # a broken stream: the next line logged reports it
                    due = None
            time.sleep(self.flush_after if due is None else max(0.0, due - time.monotonic()))
