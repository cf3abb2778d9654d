"""The 3 to 9 month goal (mailbot/progress.py), end to end by email on
the embedded default, moving the clock through nine months."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Harness,
    body,
    completion_mail,
    example_config,
    make_mail,
    sample,
)

from mailbot import progress, rules
from mailbot.compose import UK
from mailbot.workhours import WorkingTime

MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"   # lead, and a school
ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"
FIONA = "headteacher@kirkton-ps.fife.example.sch.uk"
DECLAN = "d.oneill@stserfs.fife.example.sch.uk"
ISLA = "isla.fraser@dsa.example.org"
STAFF = "coordinator@dsa.example.org"
FIFE = "digital.learning@fife.example.gov.uk"
ES = "digital.schools@educationscotland.example.gov.uk"


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 09:35")
    yield harness
    harness.close()


def award(bot: Harness, name: str, when: str) -> None:
    """What staff's "award" command does to the record."""
    store = bot.bot.store
    school = next(s for s in store.all_schools() if s["name"] == name)
    store.update_school(school.doc_id, {"status": "awarded",
                                        "awarded_at": when})
    store.add_event(bot.clock.now(), "status", school_id=school.doc_id,
                    cluster_id=school["cluster_id"], detail="awarded")
    store.commit()


def enrolled(bot: Harness) -> None:
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    bot.at("2027-01-18 11:00")
    bot.deliver(completion_mail(f"Fiona <{FIONA}>", "Kirkton Primary School"))
    bot.cycle()
    bot.at("2027-01-27 11:00")
    bot.deliver(completion_mail(f"Morag Lindsay <{MORAG}>", "Glenbrae High School"),
                completion_mail(f"Alan Reid <{ALAN}>", "Glenbrae Primary School"),
                completion_mail(f"Declan O'Neill <{DECLAN}>", "St Serf's"))
    bot.cycle()
    assert bot.cluster("Glenbrae")["validator"]["email"] == ISLA


def test_start_date_is_recorded(bot: Harness) -> None:
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    cluster = bot.bot.store.all_clusters()[0]
    assert cluster["started_at"] == cluster["activated_at"]


def test_reports_at_three_six_and_nine_months(bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-03-01 10:00")
    award(bot, "Kirkton Primary School", "2027-03-01T10:00:00+00:00")

    # Monday 12 April 2027, three months on (after the spring holidays).
    bot.at("2027-04-11 12:00")
    bot.cycle()
    assert bot.sent("progress-report") == []
    bot.at("2027-04-12 10:00")
    bot.cycle()
    bot.at("2027-04-12 11:00")
    bot.cycle()
    for who in (MORAG, ISLA, STAFF):
        reports = bot.sent("progress-report", who)
        assert len(reports) == 1, who
        assert "progress at 3 months" in str(reports[0]["Subject"])
    text = body(bot.sent("progress-report", MORAG)[0])
    assert "2 of 5 schools (40%)" in text
    assert "At the pace so far (1 awarded in" in text
    assert "would be awarded around" in text
    assert "The forecast is linear" in text
    # Nothing from the other schools since 27 January: stalled.
    assert "Nothing new has been heard for some time from" in text
    assert "Glenbrae Primary School" in text

    # Six months falls in the summer holidays: the report waits for them
    # to end, and goes once.
    bot.at("2027-07-12 10:00")
    bot.cycle()
    assert len(bot.sent("progress-report")) == 3
    bot.at("2027-08-17 10:00")
    bot.cycle()
    bot.cycle()
    six = [m for m in bot.sent("progress-report")
           if "6 months" in str(m["Subject"])]
    assert len(six) == 3

    # Nine months: 12 October is in the October week; 25 October, then.
    bot.at("2027-10-12 10:00")
    bot.cycle()
    bot.at("2027-10-25 10:00")
    bot.cycle()
    bot.at("2027-10-26 10:00")
    bot.cycle()
    nine = [m for m in bot.sent("progress-report")
            if "9 months" in str(m["Subject"])]
    assert sorted(a for m in nine for a in _to(m)) == sorted(
        [MORAG, ISLA, STAFF])
    assert len(bot.sent("progress-report")) == 9


def test_no_forecast_without_awards(bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-04-12 10:00")
    bot.cycle()
    text = body(bot.sent("progress-report", STAFF)[0])
    assert "Not enough progress to forecast" in text
    assert "1 of 5 schools (20%)" in text  # Balgonie already was


def test_validator_digest_and_monthly_summaries(bot: Harness) -> None:
    enrolled(bot)
    # Nothing the day the cluster joins, nor in its first week or month.
    assert bot.sent("progress-digest") == []
    # Monday 1 February: the validator's week and the month both begin.
    bot.at("2027-02-01 09:00")
    bot.cycle()
    bot.at("2027-02-01 14:00")
    bot.cycle()
    weekly = bot.sent("progress-digest", ISLA)
    assert len(weekly) == 1
    assert "Weekly digest" in str(weekly[0]["Subject"])
    assert "Glenbrae" in body(weekly[0])
    for who in (FIFE, ES):
        monthly = bot.sent("progress-digest", who)
        assert len(monthly) == 1, who
        assert "Monthly summary" in str(monthly[0]["Subject"])
        assert "Glenbrae" in body(monthly[0])
    # No other council has a cluster: no summary for them.
    assert len(bot.sent("progress-digest")) == 3
    # The next week: another digest for the validator, on Monday.
    bot.at("2027-02-06 10:00")   # Saturday
    bot.cycle()
    assert len(bot.sent("progress-digest", ISLA)) == 1
    bot.at("2027-02-08 09:00")
    bot.cycle()
    assert len(bot.sent("progress-digest", ISLA)) == 2
    # Monday 1 March: the next monthly summaries.
    bot.at("2027-03-01 09:00")
    bot.cycle()
    assert len(bot.sent("progress-digest", FIFE)) == 2
    assert len(bot.sent("progress-digest", ES)) == 2


def test_digests_already_sent_are_not_worked_out_again_each_sweep(
        bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    enrolled(bot)
    summarised: list[str] = []
    real = progress.cluster_summary

    def counted(store: Any, cluster: Any, *args: Any) -> Any:
        summarised.append(str(cluster["name"]))
        return real(store, cluster, *args)

    monkeypatch.setattr(progress, "cluster_summary", counted)
    bot.at("2027-02-01 09:00")
    bot.cycle()
    first = len(summarised)
    assert first >= 3  # the validator's week, Fife's month, Scotland's
    bot.at("2027-02-01 14:00")
    bot.cycle()
    assert len(summarised) == first
    assert len(bot.sent("progress-digest")) == 3


def test_stalled_schools_are_nudged_once_per_period(bot: Harness) -> None:
    enrolled(bot)
    # Kirkton finished on 18 January; the rest on 27 January.
    bot.at("2027-02-16 10:00")
    bot.cycle()
    assert len(bot.sent("stall-nudge", FIONA)) == 1
    assert bot.sent("stall-nudge", ALAN) == []
    notices = bot.sent("stall-notice")
    assert len(notices) == 1
    assert MORAG in _to(notices[0]) and ISLA in str(notices[0]["Cc"])
    assert "Kirkton Primary School" in body(notices[0])
    bot.at("2027-02-16 14:00")
    bot.cycle()
    assert len(bot.sent("stall-nudge", FIONA)) == 1
    assert len(bot.sent("stall-notice")) == 1

    # Alan writes (activity); the other two stall on 24 February.
    bot.at("2027-02-22 10:00")
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "Our plans",
                          "We are planning our visit for the spring.\n"))
    bot.cycle()
    bot.at("2027-02-25 10:00")
    bot.cycle()
    assert len(bot.sent("stall-nudge", MORAG)) == 1
    assert len(bot.sent("stall-nudge", DECLAN)) == 1
    assert bot.sent("stall-nudge", ALAN) == []
    # One notice per cluster per period (of 28 days from the start):
    # this period's went on the 16th; the next names the newly stalled.
    assert len(bot.sent("stall-notice")) == 1
    bot.at("2027-03-09 10:00")
    bot.cycle()
    assert len(bot.sent("stall-notice")) == 2
    assert "St Serf" in body(bot.sent("stall-notice")[-1])
    # Another full period of silence: Kirkton is nudged a second time.
    bot.at("2027-03-17 10:00")
    bot.cycle()
    assert len(bot.sent("stall-nudge", FIONA)) == 2


def test_where_we_stand_for_a_school_contact(bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-02-02 10:00")
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "Quick question",
                          "Hello,\n\nWhere are we with the award, and what "
                          "do we still need to do?\n\nAlan\n"))
    bot.cycle()
    answer = bot.sent("where-we-stand", ALAN)
    assert len(answer) == 1
    text = body(answer[0])
    assert "Where Glenbrae Primary School stands" in str(answer[0]["Subject"])
    assert "[done] Invited to the programme" in text
    assert "[done] Self-review complete on" in text
    assert "[to do] Digital School status, to be reached by" in text
    assert "Your validator is Isla Fraser" in text
    assert "Kirkton" not in text
    # A question, not a comment: no comment receipt, nothing stored.
    assert bot.sent("comment-receipt", ALAN) == []
    assert bot.school("Glenbrae Primary School")["comments"] == []

    # Negated, it is an ordinary comment.
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "No question",
                          "We know where we stand, thank you; no need to "
                          "tell us where we are.\n"))
    bot.cycle()
    assert len(bot.sent("where-we-stand", ALAN)) == 1



def test_a_question_with_more_to_say_is_kept_as_a_comment_once(
        bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-02-02 10:00")
    text = ("Hello,\n\nWhere do we stand with the award? We are still "
            "struggling with the wifi in the older part of the building, "
            "which makes whole-class lessons with devices hard upstairs, and "
            "we would like to know what else we need to do before the visit."
            "\n\nAlan\n")
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "Question", text))
    bot.cycle()
    [answer] = bot.sent("where-we-stand", ALAN)
    assert "added your message to the school's record" in body(answer)
    [comment] = bot.school("Glenbrae Primary School")["comments"]
    # Tagged as any comment is (guards a bug: this path kept none).
    assert ("resources", "weakness") in {(t["criterion"], t["kind"])
                                         for t in comment["tags"]}
    # The same text again is answered, but not kept twice.
    bot.at("2027-02-03 10:00")
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "Question again", text))
    bot.cycle()
    assert len(bot.sent("where-we-stand", ALAN)) == 2
    assert len(bot.school("Glenbrae Primary School")["comments"]) == 1

@pytest.mark.parametrize("question", [
    "Could you tell me where we stand?",
    "Please let us know where we stand now.",
])
def test_where_we_stand_asked_other_ways(bot: Harness, question: str) -> None:
    enrolled(bot)
    bot.at("2027-02-02 10:00")
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "Hello",
                          f"Hello,\n\n{question}\n\nAlan\n"))
    bot.cycle()
    assert len(bot.sent("where-we-stand", ALAN)) == 1
    assert bot.sent("comment-receipt", ALAN) == []

def test_where_we_stand_for_the_lead(bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-02-02 10:00")
    bot.deliver(make_mail(f"Morag Lindsay <{MORAG}>", "Progress update please",
                          "Hello,\n\nCould you tell me where we stand?\n"))
    bot.cycle()
    answer = bot.sent("where-we-stand", MORAG)
    assert len(answer) == 1
    text = body(answer[0])
    for school in ("Glenbrae High School", "Glenbrae Primary School",
                   "Kirkton Primary School", "St Serf"):
        assert school in text
    assert "Already a Digital School" in text  # Balgonie
    assert "1 of 5 schools (20%)" in text


def _to(message: object) -> set[str]:
    return {a.addr_spec.lower()
            for a in message["To"].addresses}  # type: ignore[index]


# -- the forecast -----------------------------------------------------------

RULES = rules.load(Path(__file__).resolve().parents[1] / "rules")
HOURS = WorkingTime(RULES.working_hours, RULES.public_holidays, RULES.closures)


def _uk(when: str) -> datetime:
    return datetime.fromisoformat(when).replace(tzinfo=UK)


def test_the_forecast_counts_schools_as_people_do() -> None:
    start, now = _uk("2027-01-11 09:00"), _uk("2027-02-10 09:00")
    one_left = progress.forecast(start, now, 1, 1, None)
    assert "the one remaining school would be awarded around" in one_left
    assert "schools" not in one_left and "the 1 " not in one_left
    named = progress.forecast(start, now, 1, 1, None, last="St Serf's")
    assert ("(1 awarded in 30 days), St Serf's, the one school still to be "
            "awarded, would be awarded around") in named
    two_left = progress.forecast(start, now, 2, 2, None)
    assert "the last of the 2 remaining schools would be awarded" in two_left


def test_the_forecast_falls_on_a_working_day() -> None:
    # 30 days for one award, one school left: Sunday 7 March 2027 ...
    start, now = _uk("2027-01-06 09:00"), _uk("2027-02-05 09:00")
    goal = date(2027, 10, 6)
    assert "around Sunday 7 March 2027," in progress.forecast(
        start, now, 1, 1, goal)
    # ... which for a school is Monday 8 March.
    assert "around Monday 8 March 2027, within the nine months." in (
        progress.forecast(start, now, 1, 1, goal, HOURS, "Fife"))
    # Wednesday 31 March is in the spring holidays (29 March to 9 April):
    # the first school day after them.
    start, now = _uk("2027-01-30 09:00"), _uk("2027-03-01 09:00")
    text = progress.forecast(start, now, 1, 1, goal, HOURS, "Fife")
    assert "around Monday 12 April 2027," in text
    # Reused, not rewritten: the day workhours.py says schools are open.
    # Christmas 2027 is a Saturday: Scotland's holidays are on the 27th
    # and 28th in lieu (the holidays package, as for every sending).
    assert progress.working_day(HOURS, date(2027, 12, 25), "Fife") == date(
        2027, 12, 29)
    assert progress.working_day(None, date(2027, 3, 7)) == date(2027, 3, 7)


def test_reports_forecast_a_working_day(bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-03-01 10:00")
    award(bot, "Kirkton Primary School", "2027-03-01T10:00:00+00:00")
    bot.at("2027-04-12 10:00")
    bot.cycle()
    text = body(bot.sent("progress-report", MORAG)[0])
    assert "the last of the 3 remaining schools would be awarded around" in text
    when = text.split("would be awarded around ")[1].split(",")[0]
    day = datetime.strptime(when, "%A %d %B %Y").date()
    assert HOURS.is_holiday(day, "Fife") is None and day.weekday() < 5, when


# -- the checklist, as the school stands ---------------------------------------

def _checklist(bot: Harness, name: str, **fields: object) -> list[str]:
    store = bot.bot.store
    school = next(s for s in store.all_schools() if s["name"] == name)
    if fields:
        store.update_school(school.doc_id, dict(fields))
        store.commit()
        school = store.school(school.doc_id)
    summary = progress.school_summary(store, school, bot.clock.now(), 28,
                                      date(2027, 10, 12))
    return [("[done] " if step["done"] else "[to do] ") + step["text"]
            for step in summary["checklist"]]


def test_each_checklist_item_is_worded_for_the_school_as_it_stands(
        bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-02-01 10:00")
    visit_item = "once the self-review is done"
    # Invited, nothing done yet.
    steps = _checklist(bot, "St Serf's RC Primary School", status="invited")
    assert "[to do] Complete the self-review, due by Tuesday 26 January 2027" \
        in steps
    assert ("[to do] Ask for a validation visit, once the self-review is "
            "complete and reaches 70% in every criterion") in steps
    # Self-review complete, no results: no "once the self-review is done".
    name = "Glenbrae Primary School"
    steps = _checklist(bot, name)
    assert steps[1].startswith("[done] Self-review complete on")
    assert "[to do] Self-review results: not yet received" in steps
    assert ("[to do] Ask for a validation visit when you are ready; send your "
            "self-review results with it, so that the validator has them"
            ) in steps
    assert not any(visit_item in s for s in steps)
    # Results short of 70% in two criteria: named, as people write them.
    review = {"percent": {"leadership": 80, "curriculum": 65, "culture": 90,
                          "professional_development": 60, "resources": 75},
              "estimated": [], "received_at": "2027-01-28T10:00:00+00:00"}
    steps = _checklist(bot, name, self_review=review)
    assert ("[done] Self-review results received on Thursday 28 January 2027 "
            "(Leadership & Vision 80%, Use of Digital Technology to Deliver "
            "the Curriculum 65%, School Culture 90%, Professional Development "
            "60%, Resources & Infrastructure 75%)") in steps
    assert ("[to do] Reach 70% in Use of Digital Technology to Deliver the "
            "Curriculum and Professional Development, send the updated "
            "results, then ask for a validation visit") in steps
    # Ready.
    ready = {**review, "percent": {**review["percent"], "curriculum": 72,
                                   "professional_development": 70}}
    steps = _checklist(bot, name, self_review=ready)
    assert ("[to do] Ask for a validation visit: your results reach 70% in "
            "every criterion") in steps
    # Asked; no date yet.
    steps = _checklist(bot, name, status="visit_requested",
                       visit_requested_at="2027-02-01T10:00:00+00:00")
    assert "[done] Validation visit requested on Monday 1 February 2027" \
        in steps
    assert "[to do] Validation visit: the validator will arrange a date" \
        in steps
    # A date, in the future.
    steps = _checklist(bot, name, visit_at="2027-02-25T10:00",
                       visit_date_set_at="2027-02-02T09:00:00+00:00")
    assert ("[to do] Validation visit on Thursday 25 February 2027 at 10:00"
            in steps)
    # Visited: not yet; new results are needed first.
    bot.at("2027-03-01 10:00")
    steps = _checklist(bot, name, status="self_review_complete",
                       visit_outcome="not-yet",
                       visit_outcome_at="2027-02-26T10:00:00+00:00")
    assert ("[done] Validation visit on Thursday 25 February 2027 at 10:00: "
            "not yet awarded; the validator's notes say what to work on"
            ) in steps
    assert ("[to do] Send updated self-review results, then ask for a "
            "validation visit again") in steps
    assert not any("reach 70% in every" in s for s in steps)
    # New results since: ask again.
    steps = _checklist(bot, name, self_review={
        **ready, "received_at": "2027-02-28T10:00:00+00:00"})
    assert ("[to do] Ask for a validation visit again: your results reach "
            "70% in every criterion") in steps
    # Awarded: everything done, the visit with it.
    steps = _checklist(bot, name, status="awarded", visit_outcome="awarded",
                       awarded_at="2027-03-01T10:00:00+00:00",
                       visit_requested_at="2027-03-01T09:00:00+00:00",
                       visit_at="2027-03-01T09:30",
                       visit_date_set_at="2027-03-01T09:10:00+00:00")
    assert all(s.startswith("[done] ") for s in steps), steps
    assert "[done] Validation visit on Monday 1 March 2027 at 09:30" in steps
    assert steps[-1] == ("[done] Digital School status awarded on Monday 1 "
                         "March 2027")
