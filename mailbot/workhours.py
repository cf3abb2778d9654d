"""Working time in UK schools: hours, public holidays and closures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import holidays

from mailbot.errors import ConfigError
from mailbot.rules import Closure, WorkingHours

RULES_FILE = "rules/programme.toml"
# How far ahead next_working looks before deciding there is no working
# time at all: more than a year, so an annual calendar always fits.
SEARCH_DAYS = 400


class WorkingTime:
    """When mailbot may send: working hours, not on holidays or closures."""

    def __init__(self, hours: WorkingHours, public_region: str,
                 closures: Sequence[Closure]) -> None:
        self.hours = hours
        self.closures = tuple(closures)
        self._public = _public_holidays(public_region)

    def is_working(self, moment: datetime, council: str | None = None) -> bool:
        """Is `moment` (timezone-aware) in working time for `council`?"""
        local = _aware(moment).astimezone(self.hours.timezone)
        return (self._working_day(local.date(), council)
                and self.hours.start <= local.time() < self.hours.end)

    def next_working(self, moment: datetime,
                     council: str | None = None) -> datetime:
        """`moment` if it is working time, else when working time resumes.

        The answer is in UTC. ValueError if the rules leave no working time
        in the next SEARCH_DAYS days.
        """
        moment = _aware(moment).astimezone(UTC)
        if self.is_working(moment, council):
            return moment

        local = moment.astimezone(self.hours.timezone)
        day = local.date()
        if local.time() >= self.hours.start:
            day += timedelta(days=1)  # today's hours have begun or gone
        for _ in range(SEARCH_DAYS):
            if self._working_day(day, council):
                start = datetime.combine(day, self.hours.start,
                                         tzinfo=self.hours.timezone)
                return start.astimezone(UTC)
            day += timedelta(days=1)
        raise ValueError(f"no working time in the {SEARCH_DAYS} days after "
                         f"{moment:%Y-%m-%d %H:%M} UTC; check the working "
                         f"days and closures in {RULES_FILE}")

    def deadline(self, start: date, days: int,
                 council: str | None = None) -> date:
        """`days` days after `start`, not counting school closures, and
        moved on to a working day: two weeks of self-review should be two
        weeks of school, not the Christmas holidays."""
        day, counted = start, 0
        while counted < days:
            day += timedelta(days=1)
            if not self._closed(day, council):
                counted += 1
        for _ in range(SEARCH_DAYS):
            if self._working_day(day, council):
                return day
            day += timedelta(days=1)
        return day

    def _closed(self, day: date, council: str | None) -> bool:
        return any(c.first <= day <= c.last
                   and (not c.councils or council in c.councils)
                   for c in self.closures)

    def public_holiday(self, day: date) -> str | None:
        """The name of the public holiday on `day`, if it is one."""
        name = self._public.get(day) if self._public is not None else None
        return str(name) if name else None

    def is_holiday(self, day: date, council: str | None = None) -> str | None:
        """The public holiday or closure that `day` falls in, if any.

        A closure that lists councils applies only to schools in them; with
        no council given, only closures for every council apply.
        """
        public = self.public_holiday(day)
        if public:
            return public
        for closure in self.closures:
            if not closure.first <= day <= closure.last:
                continue
            if not closure.councils or council in closure.councils:
                return closure.name or "closure"
        return None

    def _working_day(self, day: date, council: str | None) -> bool:
        return (day.weekday() in self.hours.days
                and self.is_holiday(day, council) is None)


def _public_holidays(region: str) -> holidays.HolidayBase | None:
    """The `holidays` calendar for "GB-SCT" (country-subdivision) or "GB"."""
    if not region.strip():
        return None
    country, _, subdivision = region.strip().upper().partition("-")
    try:
        return holidays.country_holidays(country, subdiv=subdivision or None)
    except NotImplementedError as exc:
        raise ConfigError(RULES_FILE, "holidays.public",
                          f"{region!r} is not a region the holidays "
                          "package knows (try GB-SCT)") from exc


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no timezone")
    return moment
