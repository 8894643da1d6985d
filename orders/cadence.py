"""When a schedule's slots fall: a cron expression in a time zone, or a fixed interval.

Every notifier computes the same slot times from the same definition (cron slots are
wall-clock times in the schedule's zone, interval slots are multiples of the interval
since the Unix epoch), so "this slot" names one moment whichever notifier places it.
Cron expressions are parsed and stepped by cronsim, which also knows daylight saving."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# Shorthands people write for the common cron expressions.
ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# Shorter intervals would make the notifier's tick, not the schedule, decide the slots.
MIN_EVERY = 1.0
MAX_EVERY = 10 * 365 * 24 * 3600.0  # ten years
# cronsim steps on wall-clock time; in the hour that repeats when daylight saving ends it
# may give a slot on the wrong side of the moment asked about. Stepping back starts this
# much later, and every answer is checked against the moment.
REPEATED_HOUR = timedelta(hours=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)


class CadenceError(ValueError):
    """A schedule's cron expression, interval or time zone cannot be used."""


@dataclass(frozen=True)
class Cadence:
    cron: str = ""
    every: float | None = None
    time_zone: str = "UTC"

    def __post_init__(self):
        if bool(self.cron) == (self.every is not None):
            raise CadenceError("give either a cron expression or an interval (every), not both")
        if self.every is not None and (isinstance(self.every, bool) or not isinstance(self.every, (int, float))
                                       or not math.isfinite(self.every) or not MIN_EVERY <= self.every <= MAX_EVERY):
            raise CadenceError(f"every must be a number of seconds, at least {MIN_EVERY:g} and at most ten years")
        self.zone  # noqa: B018 - an unknown zone is refused here, not at the first slot
        if self.cron:
            self._cron(EPOCH)  # a wrong expression is refused here, not at the first slot

    @property
    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise CadenceError(f"unknown time zone {self.time_zone!r}") from None

    def _cron(self, moment: datetime, reverse: bool = False) -> CronSim:
        expression = ALIASES.get(self.cron.strip(), self.cron)
        try:
            return CronSim(expression, moment.astimezone(self.zone), reverse=reverse)
        except CronSimError as error:
            raise CadenceError(f"cron expression {self.cron!r}: {error}") from None

    def after(self, moment: datetime) -> Iterator[datetime]:
        """The slots strictly after ``moment``, earliest first (in UTC)."""
        if self.cron:
            return (utc for slot in self._cron(moment) if (utc := slot.astimezone(UTC)) > moment)
        step = timedelta(seconds=self.every)
        first = (moment - EPOCH) // step + 1
        return (EPOCH + n * step for n in count(first))

    def at_or_before(self, moment: datetime) -> Iterator[datetime]:
        """The slots at or before ``moment``, latest first (in UTC)."""
        if self.cron:
            # cronsim steps back from the whole second below its start: starting a little
            # later makes a slot exactly at ``moment`` one it gives.
            later = self._cron(moment + REPEATED_HOUR + ONE_MICROSECOND, reverse=True)
            return (utc for slot in later if (utc := slot.astimezone(UTC)) <= moment)
        step = timedelta(seconds=self.every)
        last = (moment - EPOCH) // step
        return (EPOCH + n * step for n in count(last, -1))

    def describe(self) -> str:
        """In words, for the dashboard: "every 30 s", "At 03:00 (Europe/Berlin)"."""
        if self.every is not None:
            return f"every {self.every:g} s"
        words = self._cron(EPOCH).explain()
        return words if self.time_zone == "UTC" else f"{words} ({self.time_zone})"
