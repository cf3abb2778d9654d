"""What time decides: when invitations and reminders go out, and which
validator a finished cluster gets."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from harness import Harness, example_config, sample

from mailbot.assign import choose_validator, open_clusters
from mailbot.config import Validator
from mailbot.report import status_table
from mailbot.rules import Reminder
from mailbot.sweep import due_at

UK = ZoneInfo("Europe/London")
POOL = (Validator("Isla Fraser", "isla@x.org"),
        Validator("Graeme Munro", "graeme@x.org", ("Fife",)),
        Validator("Catriona Sinclair", "catriona@x.org", ("Highland",)))


def test_the_fewest_open_clusters_wins() -> None:
    load = Counter({"isla@x.org": 2, "catriona@x.org": 1})
    assert choose_validator(POOL, "Angus", load).name == "Graeme Munro"
    assert choose_validator(POOL, "Fife", load).name == "Catriona Sinclair"


def test_an_excluded_validator_is_never_chosen() -> None:
    load = Counter({"isla@x.org": 5})
    assert choose_validator(POOL, "Highland", load).name == "Graeme Munro"
    assert choose_validator(POOL[1:2], "Fife", Counter()) is None


def test_ties_go_to_the_first_listed() -> None:
    assert choose_validator(POOL, "Angus", Counter()).name == "Isla Fraser"


def test_only_open_clusters_count() -> None:
    clusters = [
        {"status": "validator_assigned", "validator": {"email": "isla@x.org"}},
        {"status": "validator_assigned", "validator": {"email": "isla@x.org"}},
        {"status": "closed", "validator": {"email": "graeme@x.org"}},
        {"status": "active", "validator": None},
    ]
    assert open_clusters(clusters) == Counter({"isla@x.org": 2})


def test_when_each_reminder_falls_due() -> None:
    invited = datetime(2027, 1, 12, 9, 35, tzinfo=UK)
    deadline = date(2027, 1, 26)
    assert due_at(Reminder("a", after_invitation_days=7), invited, deadline) == \
        datetime(2027, 1, 19, 9, 35, tzinfo=UK)
    assert due_at(Reminder("b", before_deadline_days=2), invited, deadline) == \
        datetime(2027, 1, 24, 0, 0, tzinfo=UK)
    assert due_at(Reminder("c", after_deadline_days=1), invited, deadline) == \
        datetime(2027, 1, 27, 0, 0, tzinfo=UK)


def test_a_weekend_nomination_is_answered_now_but_invites_on_monday(
        tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-16 11:00")  # Saturday
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert len(bot.sent("acknowledgment")) == 1
    assert bot.sent("invitation") == []
    # The deadline counts from the Monday the invitations go out, and
    # staff can see that the invitations are still to go.
    assert bot.school("Kirkton Primary School")["deadline"] == "2027-02-01"
    table = status_table(bot.bot.store, bot.clock.now())
    assert "invitation due 18 January 2027 at 08:30" in table
    # So can a tool reading the export: the school is invited, its
    # invitation not yet sent.
    school = bot.school("Kirkton Primary School")
    assert school["status"] == "invited"
    assert school["invitation"] == {"status": "pending",
                                    "due": "2027-01-18T08:30:00+00:00",
                                    "sent_at": None}

    bot.at("2027-01-18 08:29")
    bot.cycle()
    assert bot.sent("invitation") == []
    bot.at("2027-01-18 08:31")
    bot.cycle()
    assert len(bot.sent("invitation")) == 5
    assert bot.school("Kirkton Primary School")["invitation"] == {
        "status": "sent", "due": "2027-01-18T08:30:00+00:00",
        "sent_at": "2027-01-18T08:31:00+00:00"}
    bot.close()


def test_the_school_holidays_move_the_deadline_and_the_reminders(
        tmp_path: Path) -> None:
    # Invited on Friday 18 December: the holidays (21 December to 5
    # January) do not count towards the two weeks, and the first reminder,
    # due on Christmas Day, waits for the first school day.
    bot = Harness(example_config(tmp_path), "2026-12-18 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert len(bot.sent("invitation")) == 5
    assert bot.school("Kirkton Primary School")["deadline"] == "2027-01-18"
    for day in ("2026-12-25 10:00", "2027-01-01 10:00", "2027-01-05 10:00"):
        bot.at(day)
        bot.cycle()
        assert bot.sent("reminder") == []
    bot.at("2027-01-06 09:00")
    bot.cycle()
    reminders = bot.sent("reminder")
    assert len(reminders) == 4  # every school still at work, once each
    assert not any(m["Cc"] for m in reminders)
    bot.close()


def test_when_several_reminders_are_due_only_the_latest_goes(
        tmp_path: Path) -> None:
    # mailbot was stopped from the invitations until after the deadline.
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    bot.at("2027-01-28 09:00")
    bot.cycle()
    reminders = bot.sent("reminder")
    assert len(reminders) == 4
    assert all("deadline has passed" in str(m["Subject"]) for m in reminders)
    bot.at("2027-02-01 09:00")
    bot.cycle()
    assert len(bot.sent("reminder")) == 4  # the others are passed over
    bot.close()
