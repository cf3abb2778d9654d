"""Working time in UK time: hours, BST, public holidays and closures."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot import rules
from mailbot.errors import ConfigError
from mailbot.rules import Closure, WorkingHours
from mailbot.workhours import WorkingTime

UK = ZoneInfo("Europe/London")
RULES = rules.load(Path(__file__).resolve().parents[1] / "rules")
HOURS = RULES.working_hours
PROGRAMME = WorkingTime(HOURS, RULES.public_holidays, RULES.closures)
# No holidays at all: for tests about hours and clocks alone.
PLAIN = WorkingTime(HOURS, "", ())


def uk(year: int, month: int, day: int, hour: int,
       minute: int = 0) -> datetime:
    """A wall-clock time in the UK, as the UTC moment mailbot handles."""
    return datetime(year, month, day, hour, minute, tzinfo=UK).astimezone(UTC)


def utc(year: int, month: int, day: int, hour: int,
        minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ------------------------------------------------------------------ hours

def test_the_rules_file_gives_school_hours() -> None:
    assert HOURS.start == time(8, 30) and HOURS.end == time(16, 30)
    assert HOURS.days == (0, 1, 2, 3, 4)


def test_a_saturday_and_a_sunday_are_not_working() -> None:
    assert not PROGRAMME.is_working(uk(2027, 1, 16, 10))
    assert not PROGRAMME.is_working(uk(2027, 1, 17, 10))


@pytest.mark.parametrize("hour, minute, working", [
    (8, 29, False), (8, 30, True), (12, 0, True), (16, 29, True),
    (16, 30, False), (23, 59, False), (0, 0, False)])
def test_monday_hours_in_january(hour: int, minute: int,
                                 working: bool) -> None:
    assert PROGRAMME.is_working(uk(2027, 1, 11, hour, minute)) is working


def test_in_january_uk_time_is_utc() -> None:
    assert not PROGRAMME.is_working(utc(2027, 1, 11, 8, 29))
    assert PROGRAMME.is_working(utc(2027, 1, 11, 8, 30))


def test_in_july_uk_time_is_an_hour_ahead_of_utc() -> None:
    # Wednesday 15 July 2026, British Summer Time.
    assert not PROGRAMME.is_working(utc(2026, 7, 15, 7, 29))
    assert PROGRAMME.is_working(utc(2026, 7, 15, 7, 30))
    assert PROGRAMME.is_working(utc(2026, 7, 15, 15, 29))
    assert not PROGRAMME.is_working(utc(2026, 7, 15, 15, 30))


def test_any_timezone_is_accepted() -> None:
    paris = datetime(2027, 1, 11, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert PROGRAMME.is_working(paris)  # 08:30 in London


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        PROGRAMME.is_working(datetime(2027, 1, 11, 10))
    with pytest.raises(ValueError, match="no timezone"):
        PROGRAMME.next_working(datetime(2027, 1, 11, 10))


# --------------------------------------------------------------- holidays

def test_new_years_day_is_a_public_holiday() -> None:
    assert PROGRAMME.is_holiday(date(2027, 1, 1)) == "New Year's Day"
    assert not PROGRAMME.is_working(uk(2027, 1, 1, 10))


def test_a_scottish_holiday_is_not_an_english_one() -> None:
    england = WorkingTime(HOURS, "GB-ENG", ())
    scotland = WorkingTime(HOURS, "gb-sct", ())
    assert england.is_holiday(date(2027, 11, 30)) is None
    assert scotland.is_holiday(date(2027, 11, 30)) == "Saint Andrew's Day"


def test_no_region_means_no_public_holidays() -> None:
    assert PLAIN.is_holiday(date(2027, 1, 1)) is None
    assert PLAIN.is_working(uk(2027, 1, 1, 10))


@pytest.mark.parametrize("region", ["XX", "GB-ZZZ", "Scotland"])
def test_an_unknown_region_is_a_config_error(region: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WorkingTime(HOURS, region, ())
    assert caught.value.path == "rules/programme.toml"
    assert caught.value.key == "holidays.public"


def test_a_day_inside_a_closure_is_not_working() -> None:
    assert PROGRAMME.is_holiday(date(2027, 10, 13)) == "October week"
    assert not PROGRAMME.is_working(uk(2027, 10, 13, 10))


def test_closures_include_their_first_and_last_days() -> None:
    assert PROGRAMME.is_holiday(date(2027, 3, 29)) == "Spring holidays"
    assert PROGRAMME.is_holiday(date(2027, 4, 9)) == "Spring holidays"
    assert PROGRAMME.is_holiday(date(2027, 4, 12)) is None


# ----------------------------------------------------------- next_working

def test_a_working_moment_is_its_own_next() -> None:
    moment = uk(2027, 1, 12, 11, 7)
    assert PROGRAMME.next_working(moment) == moment


def test_before_the_start_waits_for_the_same_morning() -> None:
    found = PROGRAMME.next_working(uk(2027, 1, 12, 6))
    assert found == utc(2027, 1, 12, 8, 30)


def test_friday_evening_waits_for_monday_morning() -> None:
    found = PROGRAMME.next_working(uk(2027, 1, 15, 17))
    assert found == utc(2027, 1, 18, 8, 30)
    assert found.tzinfo == UTC


def test_friday_evening_in_summer_time() -> None:
    found = PROGRAMME.next_working(uk(2026, 7, 10, 17))
    assert found == uk(2026, 7, 13, 8, 30) == utc(2026, 7, 13, 7, 30)


def test_clocks_going_forward_over_the_weekend() -> None:
    # 28 March 2027: GMT becomes BST at 01:00 UTC.
    found = PLAIN.next_working(uk(2027, 3, 26, 17))
    assert found == utc(2027, 3, 29, 7, 30)


def test_clocks_going_back_over_the_weekend() -> None:
    # 25 October 2026: BST becomes GMT at 01:00 UTC.
    found = PLAIN.next_working(uk(2026, 10, 23, 17))
    assert found == utc(2026, 10, 26, 8, 30)


def test_hours_on_the_day_the_clocks_change() -> None:
    every_day = WorkingHours(UK, tuple(range(7)), time(8, 30), time(16, 30))
    week = WorkingTime(every_day, "", ())
    assert not week.is_working(utc(2027, 3, 28, 7, 29))
    assert week.is_working(utc(2027, 3, 28, 7, 30))
    assert week.next_working(utc(2027, 3, 28, 0)) == utc(2027, 3, 28, 7, 30)
    assert week.next_working(utc(2026, 10, 25, 0)) == utc(2026, 10, 25, 8, 30)


def test_easter_and_the_spring_holidays() -> None:
    # Good Friday 26 March 2027, then the spring closure to 9 April.
    found = PROGRAMME.next_working(uk(2027, 3, 25, 17))
    assert found == utc(2027, 4, 12, 7, 30)


def test_across_the_christmas_closure() -> None:
    found = PROGRAMME.next_working(uk(2026, 12, 18, 17))
    assert found == utc(2027, 1, 6, 8, 30)
    assert PROGRAMME.next_working(uk(2026, 12, 25, 12)) == found


# ------------------------------------------------------ council closures

IN_SERVICE = Closure("Fife in-service days", date(2027, 2, 15),
                     date(2027, 2, 16), ("Fife",))
COUNCILS = WorkingTime(HOURS, "GB-SCT", (*RULES.closures, IN_SERVICE))


def test_a_council_closure_applies_to_that_council() -> None:
    monday = uk(2027, 2, 15, 10)
    assert not COUNCILS.is_working(monday, "Fife")
    assert COUNCILS.is_holiday(monday.date(), "Fife") == "Fife in-service days"
    assert COUNCILS.is_working(monday, "Highland")
    assert COUNCILS.is_working(monday)  # no council: only general closures


def test_next_working_for_a_council() -> None:
    friday = uk(2027, 2, 12, 17)
    assert COUNCILS.next_working(friday, "Fife") == utc(2027, 2, 17, 8, 30)
    assert COUNCILS.next_working(friday, "Highland") == utc(2027, 2, 15, 8, 30)


def test_general_closures_apply_to_every_council() -> None:
    assert not COUNCILS.is_working(uk(2027, 10, 13, 10), "Highland")


# --------------------------------------------------------- no time at all

def test_no_working_days_at_all_is_an_error() -> None:
    no_days = WorkingHours(UK, (), time(8, 30), time(16, 30))
    never = WorkingTime(no_days, "", ())
    with pytest.raises(ValueError, match="no working time"):
        never.next_working(uk(2027, 1, 11, 10))


def test_a_closure_longer_than_the_search_is_an_error() -> None:
    sabbatical = Closure("closed", date(2027, 1, 1), date(2029, 1, 1))
    closed = WorkingTime(HOURS, "", (sabbatical,))
    with pytest.raises(ValueError, match="no working time"):
        closed.next_working(uk(2027, 1, 11, 10))


# ------------------------------------------------------------- properties

@given(st.datetimes(min_value=datetime(2026, 1, 1),
                    max_value=datetime(2028, 12, 31),
                    timezones=st.just(UTC)))
def test_next_working_is_working_and_not_before(moment: datetime) -> None:
    found = PROGRAMME.next_working(moment)
    assert found >= moment
    assert PROGRAMME.is_working(found)
    assert PROGRAMME.next_working(found) == found
    # Nothing earlier on the way was working time.
    if found > moment:
        assert not PROGRAMME.is_working(found - timedelta(minutes=1))


def test_a_deadline_does_not_count_school_holidays() -> None:
    hours = WorkingTime(HOURS, "GB-SCT", [
        Closure("Christmas holidays", date(2026, 12, 21), date(2027, 1, 5))])
    # Invited Monday 14 December: one week before the holidays, one after.
    assert hours.deadline(date(2026, 12, 14), 14) == date(2027, 1, 13)
    # Outside any holiday, fourteen days are fourteen days...
    assert hours.deadline(date(2027, 1, 12), 14) == date(2027, 1, 26)
    # ...moved on to Monday when they end on a weekend.
    assert hours.deadline(date(2027, 1, 16), 14) == date(2027, 2, 1)


def test_a_council_closure_moves_only_that_councils_deadline() -> None:
    hours = WorkingTime(HOURS, "", [
        Closure("Fife in-service", date(2027, 2, 15), date(2027, 2, 19),
                ("Fife",))])
    assert hours.deadline(date(2027, 2, 8), 14, "Fife") == date(2027, 3, 1)
    assert hours.deadline(date(2027, 2, 8), 14, "Angus") == date(2027, 2, 22)
