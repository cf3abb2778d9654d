"""The date (and time) of a validation visit, as a validator writes it.

Careful rather than clever: "Thursday 4 March", "4th March 2027 at
10am", "04/03/2027" (day first, as in the UK), "2027-03-04 10:30" are
read; anything that could be read two ways is not guessed but reported,
so that the validator can be asked: two different dates, a weekday that
does not fall on the date given, a date already past, "03/14/2027", a
time such as "at 7" that might be morning or evening, or a weekday with
no date ("next Thursday").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time

MONTHS = {name: n for n, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"),
    ("april", "apr"), ("may",), ("june", "jun"), ("july", "jul"),
    ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec")), 1) for name in names}
WEEKDAYS = {name: n for n, names in enumerate((
    ("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"),
    ("thursday", "thu", "thur", "thurs"), ("friday", "fri"),
    ("saturday", "sat"), ("sunday", "sun"))) for name in names}
# Read no further than this: a date is in the first lines of a reply.
MAX_CHARS = 5_000

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
_YEAR = r"(?:,?\s+(?P<year>20\d\d))?"
_DAY_MONTH = re.compile(
    rf"\b(?:(?P<weekday>{_WEEKDAY})\.?,?\s+(?:the\s+)?)?"
    rf"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH})\b\.?"
    + _YEAR, re.IGNORECASE)
_MONTH_DAY = re.compile(
    rf"\b(?:(?P<weekday>{_WEEKDAY})\.?,?\s+)?(?P<month>{_MONTH})\.?\s+"
    rf"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?\b" + _YEAR, re.IGNORECASE)
_NUMERIC = re.compile(
    rf"\b(?:(?P<weekday>{_WEEKDAY})\.?,?\s+)?"
    r"(?P<a>[0-3]?\d)[/.](?P<b>[01]?\d)(?:[/.](?P<year>(?:20)?\d\d))?\b")
_ISO = re.compile(r"\b(?P<year>20\d\d)-(?P<month>[01]\d)-(?P<day>[0-3]\d)\b")
_WEEKDAY_ALONE = re.compile(rf"\b(?:{_WEEKDAY})\b", re.IGNORECASE)
_TIME = re.compile(
    r"\b(?:at\s+|from\s+|@\s*)?(?P<hour>[012]?\d)(?:[:.](?P<minute>[0-5]\d))?"
    r"\s*(?P<half>a\.?m\.?|p\.?m\.?)?(?![\w/])", re.IGNORECASE)


@dataclass(frozen=True)
class VisitDate:
    """What was read: a date and perhaps a time, or why it is unclear
    (`problem`), or nothing at all (both empty)."""

    day: date | None = None
    at: time | None = None
    problem: str = ""

    @property
    def found(self) -> bool:
        return self.day is not None and not self.problem

    def stamp(self) -> str:
        """ISO: "2027-03-04" or "2027-03-04T10:00"."""
        assert self.day is not None
        if self.at is None:
            return self.day.isoformat()
        return datetime.combine(self.day, self.at).isoformat(timespec="minutes")


@dataclass(frozen=True)
class _Found:
    day: date
    start: int
    end: int


def parse(text: str, today: date) -> VisitDate:
    """The one visit date `text` gives, on or after `today`."""
    text = text[:MAX_CHARS]
    found: list[_Found] = []
    problems: list[str] = []
    taken: list[tuple[int, int]] = []

    def overlaps(start: int, end: int) -> bool:
        return any(start < e and s < end for s, e in taken)

    for pattern in (_ISO, _DAY_MONTH, _MONTH_DAY, _NUMERIC):
        for match in pattern.finditer(text):
            if overlaps(match.start(), match.end()):
                continue
            day, problem = _day(match, pattern, today)
            if day is None and not problem:
                continue  # "9.15", "10.05": a time, left for _time to read
            taken.append((match.start(), match.end()))
            if problem:
                problems.append(problem)
            elif day is not None:
                found.append(_Found(day, match.start(), match.end()))
    if problems:
        return VisitDate(problem=problems[0])
    days = sorted({f.day for f in found})
    if len(days) > 1:
        return VisitDate(problem="more than one date is given ("
                         + ", ".join(_long(d) for d in days) + ")")
    if not days:
        rest = _blank(text, taken)
        if _WEEKDAY_ALONE.search(rest):
            return VisitDate(problem="a day of the week is given, "
                                     "but not the date")
        return VisitDate()
    day = days[0]
    if day < today:
        return VisitDate(problem=f"{_long(day)} has already passed")
    at, problem = _time(_blank(text, taken))
    if problem:
        return VisitDate(day=day, problem=problem)
    return VisitDate(day=day, at=at)


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _day(match: re.Match[str], pattern: re.Pattern[str], today: date
         ) -> tuple[date | None, str]:
    groups = match.groupdict()
    written = match.group(0).strip()
    if pattern is _NUMERIC:
        if groups.get("year") is None and "/" not in written:
            # "10.30" is a time, not the 10th of a 30th month.
            return None, ""
        a, b = int(groups["a"]), int(groups["b"])
        if b > 12 or a == 0 or b == 0:
            return None, (f'"{written}" cannot be read as day/month')
        day_n, month_n = a, b
    elif pattern is _ISO:
        day_n, month_n = int(groups["day"]), int(groups["month"])
    else:
        day_n = int(groups["day"])
        month_n = MONTHS[groups["month"].lower()]
    year_text = groups.get("year")
    try:
        if year_text:
            year = int(year_text) + (2000 if len(year_text) == 2 else 0)
            day = date(year, month_n, day_n)
        else:
            day = date(today.year, month_n, day_n)
            if day < today:
                day = date(today.year + 1, month_n, day_n)
    except ValueError:
        return None, f'"{written}" is not a date'
    weekday = groups.get("weekday")
    if weekday and WEEKDAYS[weekday.lower().rstrip(".")] != day.weekday():
        return None, (f'"{written}": {_long(day)} is not a '
                      f"{weekday.capitalize()}")
    return day, ""


def _time(text: str) -> tuple[time | None, str]:
    times: set[time] = set()
    for match in _TIME.finditer(text):
        hour, minute = int(match.group("hour")), int(match.group("minute") or 0)
        half = (match.group("half") or "").lower().replace(".", "")
        said = match.group(0).strip()
        if not half and match.group("minute") is None \
                and not said.lower().startswith(("at", "from", "@")):
            continue  # a bare number: not a time
        if half:
            if not 1 <= hour <= 12:
                return None, f'"{said}" is not a time'
            hour = hour % 12 + (12 if half == "pm" else 0)
        elif hour > 23:
            return None, f'"{said}" is not a time'
        elif 0 < hour < 8 and match.group("minute") is None:
            return None, (f'"{said}" could be morning or evening; '
                          "please add am or pm")
        times.add(time(hour, minute))
    if len(times) > 1:
        return None, "more than one time is given"
    return (times.pop() if times else None), ""


def _long(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def shown(stamp: str) -> str:
    """ "Thursday 4 March 2027" or "Thursday 4 March 2027 at 10:00". """
    moment = datetime.fromisoformat(stamp)
    text = _long(moment.date())
    return text if "T" not in stamp else f"{text} at {moment:%H:%M}"
