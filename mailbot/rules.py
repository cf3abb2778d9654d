"""What the programme decides, read from the files in rules/.

Deadlines, the reminder cadence, working hours, holidays and the phrases
that mark a kind of message are data that staff edit; this module loads
and checks them once, naming the file and key of any mistake.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from mailbot.councils import COUNCILS
from mailbot.errors import ConfigError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Reminder:
    """One step of the cadence; exactly one of the three offsets is set."""

    name: str
    after_invitation_days: int | None = None
    before_deadline_days: int | None = None
    after_deadline_days: int | None = None
    copy_lead: bool = False


@dataclass(frozen=True)
class Closure:
    name: str
    first: date
    last: date
    councils: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkingHours:
    timezone: ZoneInfo
    days: tuple[int, ...]  # Monday is 0
    start: time
    end: time


@dataclass(frozen=True)
class Phrases:
    completion: tuple[str, ...]
    visit_request: tuple[str, ...]
    already_awarded: tuple[str, ...]
    negations: tuple[str, ...]
    # progress.py: a school or lead asking where they stand (optional key).
    where_we_stand: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatrixRules:
    """[matrix]: the matrix of supports (mailbot/matrix.py, supports.py)."""

    max_mentees_per_criterion: int = 2
    strength_threshold: float = 70
    validator_gaps: int = 3  # gaps left to the validator's guidance
    council_gaps: int = 6  # then to the council; the rest: Education Scotland


@dataclass(frozen=True)
class Rules:
    deadline_days: int
    replies_per_address_per_day: int
    max_schools: int
    nominations_per_sender_per_day: int
    reminders: tuple[Reminder, ...]
    working_hours: WorkingHours
    public_holidays: str
    closures: tuple[Closure, ...]
    phrases: Phrases
    # progress.py: days without activity before a school counts as stalled.
    stalled_after_days: int = 28
    # supports.py: the [matrix] table.
    matrix: MatrixRules = field(default_factory=MatrixRules)


_PROGRAMME_KEYS = {
    "self_review": {"deadline_days"},
    "replies": {"per_address_per_day"},
    "nomination": {"max_schools", "per_sender_per_day"},
    "reminders": None,  # checked entry by entry
    "working_hours": {"timezone", "days", "start", "end"},
    "holidays": {"public", "closures"},
    "progress": {"stalled_after_days"},  # progress.py
    "matrix": {"max_mentees_per_criterion", "strength_threshold",
               "validator_gaps", "council_gaps"},  # supports.py
}
_PHRASE_KEYS = {"completion", "visit_request", "already_awarded", "negations"}
_OPTIONAL_PHRASE_KEYS = {"where_we_stand"}  # progress.py


def load(folder: Path) -> Rules:
    programme_file = folder / "programme.toml"
    phrases_file = folder / "phrases.toml"
    programme = read_rules_file(programme_file)
    phrases = read_rules_file(phrases_file)
    _known_keys(programme_file, programme, _PROGRAMME_KEYS)
    _known_keys(phrases_file, phrases,
                dict.fromkeys(_PHRASE_KEYS | _OPTIONAL_PHRASE_KEYS))
    return Rules(
        deadline_days=_deadline(programme_file, programme),
        replies_per_address_per_day=_whole(
            programme_file, programme, "replies", "per_address_per_day", 5),
        max_schools=_whole(programme_file, programme, "nomination",
                           "max_schools", 40),
        nominations_per_sender_per_day=_whole(
            programme_file, programme, "nomination", "per_sender_per_day", 3),
        reminders=_reminders(programme_file, programme),
        working_hours=_working_hours(programme_file, programme),
        public_holidays=_public(programme_file, programme),
        closures=_closures(programme_file, programme),
        phrases=_phrases(phrases_file, phrases),
        stalled_after_days=_whole(programme_file, programme, "progress",
                                  "stalled_after_days", 28),
        matrix=_matrix(programme_file, programme),
    )


def read_rules_file(path: Path) -> dict[str, Any]:
    """A TOML file of rules/, or a ConfigError that says what is wrong."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(path, "", "no such rules file (the rules/ folder "
                          "that mailbot comes with has one to copy)") from exc
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(path, "", f"cannot read: {exc}") from exc


def _known_keys(path: Path, raw: dict[str, Any],
                known: dict[str, set[str] | None]) -> None:
    """Refuse a misspelt section or key instead of quietly ignoring it."""
    for section, value in raw.items():
        if section not in known:
            raise ConfigError(path, section, "unknown section or key "
                              f"(known: {', '.join(sorted(known))})")
        keys = known[section]
        if keys is None or not isinstance(value, dict):
            continue
        for key in value:
            if key not in keys:
                raise ConfigError(path, f"{section}.{key}", "unknown key "
                                  f"(known: {', '.join(sorted(keys))})")


def _deadline(path: Path, raw: dict[str, Any]) -> int:
    section = raw.get("self_review", {})
    if "deadline_days" not in section:
        raise ConfigError(path, "self_review.deadline_days", "missing")
    days = section["deadline_days"]
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ConfigError(path, "self_review.deadline_days",
                          "must be a whole number of days, at least 1")
    return days


def _whole(path: Path, raw: dict[str, Any], section: str, key: str,
           default: int) -> int:
    value = raw.get(section, {}).get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(path, f"{section}.{key}",
                          "must be a whole number, at least 1")
    return value


def _reminders(path: Path, raw: dict[str, Any]) -> tuple[Reminder, ...]:
    found = []
    offsets = ("after_invitation_days", "before_deadline_days",
               "after_deadline_days")
    for n, entry in enumerate(raw.get("reminders", [])):
        key = f"reminders[{n}]"
        unknown = set(entry) - {"name", "copy_lead", *offsets}
        if unknown:
            raise ConfigError(path, f"{key}.{min(unknown)}", "unknown key")
        given = [k for k in offsets if k in entry]
        if len(given) != 1:
            raise ConfigError(path, key, f"give exactly one of {', '.join(offsets)}")
        value = entry[given[0]]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(path, f"{key}.{given[0]}", "must be days, 0 or more")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(path, f"{key}.name", "missing")
        copy_lead = entry.get("copy_lead", False)
        if not isinstance(copy_lead, bool):
            raise ConfigError(path, f"{key}.copy_lead", "must be true or false")
        found.append(Reminder(name=name, copy_lead=copy_lead,
                              **{given[0]: value}))
    names = [r.name for r in found]
    if len(set(names)) != len(names):
        raise ConfigError(path, "reminders", "two reminders share a name")
    return tuple(found)


def _working_hours(path: Path, raw: dict[str, Any]) -> WorkingHours:
    table = raw.get("working_hours", {})
    try:
        zone = ZoneInfo(table.get("timezone", "Europe/London"))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(path, "working_hours.timezone", "unknown timezone") from exc
    days = table.get("days", list(DAYS[:5]))
    if not isinstance(days, list) or any(d not in DAYS for d in days):
        raise ConfigError(path, "working_hours.days",
                          f"must be a list of {', '.join(DAYS)}")
    try:
        start = time.fromisoformat(table.get("start", "08:30"))
        end = time.fromisoformat(table.get("end", "16:30"))
    except (TypeError, ValueError) as exc:
        raise ConfigError(path, "working_hours", "start and end are HH:MM") from exc
    if not start < end:
        raise ConfigError(path, "working_hours.end", "must be after start")
    return WorkingHours(zone, tuple(DAYS.index(d) for d in days), start, end)


def _public(path: Path, raw: dict[str, Any]) -> str:
    region = raw.get("holidays", {}).get("public", "")
    if not isinstance(region, str):
        raise ConfigError(path, "holidays.public", "must be a region like GB-SCT")
    country, _, subdivision = region.strip().upper().partition("-")
    if country:
        try:
            holidays.country_holidays(country, subdiv=subdivision or None)
        except NotImplementedError as exc:
            raise ConfigError(path, "holidays.public",
                              f"{region!r} is not a region the holidays "
                              "package knows (try GB-SCT)") from exc
    return region


def _closures(path: Path, raw: dict[str, Any]) -> tuple[Closure, ...]:
    found = []
    for n, entry in enumerate(raw.get("holidays", {}).get("closures", [])):
        key = f"holidays.closures[{n}]"
        first, last = entry.get("first"), entry.get("last")
        if not isinstance(first, date) or not isinstance(last, date):
            raise ConfigError(path, key, "first and last must be dates (YYYY-MM-DD)")
        if last < first:
            raise ConfigError(path, f"{key}.last", "is before first")
        councils = tuple(entry.get("councils", ()))
        for council in councils:
            if council not in COUNCILS:
                raise ConfigError(path, f"{key}.councils",
                                  f"{council!r} is not one of the 32 councils")
        found.append(Closure(str(entry.get("name", "")), first, last, councils))
    return tuple(found)


def _phrases(path: Path, raw: dict[str, Any]) -> Phrases:
    lists = {}
    for key in sorted(_PHRASE_KEYS | _OPTIONAL_PHRASE_KEYS):
        if key not in raw:
            if key in _OPTIONAL_PHRASE_KEYS:
                continue
            raise ConfigError(path, key, "missing")
        value = raw[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(path, key, "must be a list of phrases in quotes")
        for n, phrase in enumerate(value):
            if not any(ch.isalnum() for ch in phrase):
                raise ConfigError(path, f"{key}[{n}]",
                                  f"{phrase!r} has no words to match")
        lists[key] = tuple(value)
    return Phrases(**lists)


def _matrix(path: Path, raw: dict[str, Any]) -> MatrixRules:
    """The [matrix] table (supports.py), each key checked."""
    table = raw.get("matrix", {})
    if not isinstance(table, dict):
        raise ConfigError(path, "matrix", "must be a table")
    default = MatrixRules()
    whole = {}
    for key in ("max_mentees_per_criterion", "validator_gaps", "council_gaps"):
        value = table.get(key, getattr(default, key))
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(path, f"matrix.{key}",
                              "must be a whole number, 0 or more")
        whole[key] = value
    threshold = table.get("strength_threshold", default.strength_threshold)
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) \
            or not 0 < threshold <= 100:
        raise ConfigError(path, "matrix.strength_threshold",
                          "must be a percentage above 0, at most 100")
    return MatrixRules(strength_threshold=float(threshold), **whole)
