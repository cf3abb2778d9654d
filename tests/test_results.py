"""Self-review results, the 70% rule for visits, visit dates, outcomes
and awards, end to end by email (mailbot/results.py)."""

from __future__ import annotations

import email.utils
import io
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest
from harness import (
    Harness,
    body,
    completion_mail,
    example_config,
    make_mail,
    sample,
)

from mailbot import mail, results, visitdate

MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"
ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"
DECLAN = "d.oneill@stserfs.fife.example.sch.uk"
ISLA = "isla.fraser@dsa.example.org"
SCHOOL = "Glenbrae Primary School"
READY = ("Leadership & Vision: 82%\nCurriculum: 75%\nSchool Culture: 78%\n"
         "Professional Development: 71%\nResources & Infrastructure: 80%\n")
SHORT = ("Leadership & Vision: 82%\nCurriculum: 75%\nSchool Culture: 60%\n"
         "Professional Development: 71%\nResources & Infrastructure: 55%\n")


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 09:35")
    yield harness
    harness.close()


def enrolled(bot: Harness, validator: bool = True) -> None:
    """Sample 01's cluster; with `validator`, every school finished and
    Isla Fraser assigned."""
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    if not validator:
        return
    bot.at("2027-01-18 11:00")
    bot.deliver(sample("05-self-review-complete"),
                completion_mail(f"Morag Lindsay <{MORAG}>", "Glenbrae High School"),
                completion_mail(f"Alan Reid <{ALAN}>", SCHOOL),
                completion_mail(f"Declan O'Neill <{DECLAN}>", "St Serf's"))
    bot.cycle()
    assert bot.cluster("Glenbrae")["validator"]["email"] == ISLA


def with_attachment(text: str, filename: str, data: bytes,
                    maintype: str, subtype: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Alan Reid <{ALAN}>"
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = "Our self-review results"
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="glenbrae.example")
    message.set_content(text)
    message.add_attachment(data, maintype=maintype, subtype=subtype,
                           filename=filename)
    return message.as_bytes()


def from_alan(subject: str, text: str) -> bytes:
    return make_mail(f"Alan Reid <{ALAN}>", subject, text)


def reply_from_isla(notice: EmailMessage, text: str) -> bytes:
    return make_mail(f"Isla Fraser <{ISLA}>", f"Re: {notice['Subject']}", text,
                     In_Reply_To=str(notice["Message-ID"]),
                     References=str(notice["Message-ID"]))


def isla_answers(bot: Harness, notice: EmailMessage, when: str,
                 text: str) -> None:
    """At `when`, the validator answers `notice` with `text`; one cycle."""
    bot.at(when)
    bot.deliver(reply_from_isla(notice, text))
    bot.cycle()


def percents(bot: Harness) -> dict[str, float]:
    return dict(bot.school(SCHOOL)["self_review"]["percent"])


# -- results by email --------------------------------------------------------

def test_results_in_a_csv(bot: Harness) -> None:
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    csv = (b"Criterion,Score\nLeadership & Vision,82%\nCurriculum,75%\n"
           b"School Culture,60%\nProfessional Development,71%\n"
           b"Resources & Infrastructure,80%\n")
    bot.deliver(with_attachment("Please find our results attached.",
                                "results.csv", csv, "text", "csv"))
    bot.cycle()
    assert percents(bot) == {"leadership": 82, "curriculum": 75,
                             "culture": 60, "professional_development": 71,
                             "resources": 80}
    receipt = body(bot.sent("results-receipt", ALAN)[0])
    assert "School Culture: 60% - short of 70%" in receipt
    assert "not there yet" in receipt
    assert "you may now apply" not in receipt
    events = [e["event"] for e in bot.school(SCHOOL)["history"]]
    assert "self-review-results" in events
    assert not bot.sent("comment-receipt", ALAN)


def test_results_in_a_workbook(bot: Harness) -> None:
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Criterion", "Addressed", "Partially", "Not addressed",
                  "Percent"])
    for name, percent in [("Leadership & Vision", 0.9),
                          ("Use of Digital Technology to Deliver the Curriculum",
                           0.75),
                          ("School Culture", 0.8),
                          ("Professional Development", 0.72),
                          ("Resources & Infrastructure", 0.7)]:
        sheet.append([name, None, None, None, percent])
    out = io.BytesIO()
    book.save(out)
    bot.deliver(with_attachment(
        "Our self-review results are attached.", "self-review.xlsx",
        out.getvalue(), "application",
        "vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
    bot.cycle()
    assert percents(bot) == {"leadership": 90, "curriculum": 75,
                             "culture": 80, "professional_development": 72,
                             "resources": 70}
    receipt = body(bot.sent("results-receipt", ALAN)[0])
    assert "you may now apply for a validation visit" in receipt


def test_results_in_the_text_and_counts(bot: Harness) -> None:
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    bot.deliver(from_alan("Self-review scores",
                          "Hello,\n\nLeadership & Vision: 80%\n"
                          "Culture - 10 out of 12 addressed\n\nAlan\n"))
    bot.cycle()
    review = bot.school(SCHOOL)["self_review"]
    assert review["percent"]["leadership"] == 80
    assert review["percent"]["culture"] == pytest.approx(83.3)
    assert review["estimated"] == ["culture"]
    receipt = body(bot.sent("results-receipt", ALAN)[0])
    assert "Professional Development: not given - short of 70%" in receipt


def test_completion_with_results_records_both(bot: Harness) -> None:
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    bot.deliver(from_alan("Self-review", "We have now completed the "
                          "self-review. Our scores:\n" + READY))
    bot.cycle()
    school = bot.school(SCHOOL)
    assert school["status"] == "self_review_complete"
    assert school["self_review"]["percent"]["culture"] == 78
    assert len(bot.sent("completion-receipt", ALAN)) == 1
    assert len(bot.sent("results-receipt", ALAN)) == 1


def test_a_completion_keeps_what_it_says_of_the_criteria(bot: Harness) -> None:
    # Found by trying mailbot with a school's everyday mail: the completion
    # was recorded and the words beside it about the criteria were lost.
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    bot.deliver(from_alan("Self-review", "We completed the self-review on "
                          "Friday. Our coding club is going really well, but "
                          "our laptops are ageing and very slow.\n"))
    bot.cycle()
    school = bot.school(SCHOOL)
    assert school["status"] == "self_review_complete"
    [comment] = school["comments"]
    assert {(t["criterion"], t["kind"]) for t in comment["tags"]} == {
        ("curriculum", "strength"), ("resources", "weakness")}
    assert len(bot.sent("completion-receipt", ALAN)) == 1
    assert bot.sent("comment-receipt", ALAN) == []


def test_a_plain_completion_is_no_comment(bot: Harness) -> None:
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    bot.deliver(from_alan("Self-review", "We have completed the self-review."))
    bot.cycle()
    assert bot.school(SCHOOL)["comments"] == []


def test_comments_are_tagged(bot: Harness) -> None:
    enrolled(bot, validator=False)
    bot.at("2027-01-20 10:00")
    bot.deliver(from_alan("A comment", "Strengths: a clear digital strategy."
                          "\n\nWeakness: the wifi in the hall is poor.\n"))
    bot.cycle()
    comment = bot.bot.store.comments_of(
        next(s.doc_id for s in bot.bot.store.all_schools()
             if s["name"] == SCHOOL))[0]
    # Tagged as it arrived, and kept with it.
    stored = {(t["criterion"], t["kind"]) for t in comment["tags"]}
    assert ("leadership", "strength") in stored
    assert ("resources", "weakness") in stored
    assert results.tags_of(comment) == comment["tags"]
    # A comment kept before tags were has them worked out when asked.
    untagged = {k: v for k, v in comment.items() if k != "tags"}
    assert results.tags_of(untagged) == comment["tags"]
    exported = next(s for c in bot.export()["clusters"] for s in c["schools"]
                    if s["name"] == SCHOOL)["comments"][0]
    assert exported["tags"] == comment["tags"]


# -- the 70% rule ------------------------------------------------------------

def test_a_request_below_70_is_not_passed_on(bot: Harness) -> None:
    enrolled(bot)
    bot.at("2027-02-01 10:00")
    bot.deliver(from_alan("Validation visit", "We would like to apply for a "
                          "validation visit. Our results:\n" + SHORT))
    bot.cycle()
    reply = body(bot.sent("visit-not-yet", ALAN)[0])
    assert "School Culture, Resources & Infrastructure are not there yet" \
        in reply
    assert "updated results" in reply
    assert not bot.sent("visit-request")
    assert not bot.sent("acknowledgment", ALAN)
    school = bot.school(SCHOOL)
    assert school["status"] == "self_review_complete"
    assert school["self_review"]["percent"]["culture"] == 60
    assert "visit-not-yet" in [e["event"] for e in school["history"]]
    assert "visit-requested" not in [e["event"] for e in school["history"]]


def test_a_request_with_no_results_goes_on_with_a_note(bot: Harness) -> None:
    """No results on record is not a shortfall: many schools send them to
    the validator only. The request goes on, and the notice says so."""
    enrolled(bot)
    bot.at("2027-02-01 10:00")
    bot.deliver(from_alan("Validation visit",
                          "We would like to apply for a validation visit."))
    bot.cycle()
    assert not bot.sent("visit-not-yet")
    (notice,) = bot.sent("visit-request", ISLA)
    assert "mailbot has no self-review results from this school" in \
        " ".join(body(notice).split())


# -- the visit, its date and its outcome --------------------------------------

def ready_and_requested(bot: Harness) -> EmailMessage:
    enrolled(bot)
    bot.at("2027-02-01 10:00")
    bot.deliver(from_alan("Our results", READY))
    bot.cycle()
    bot.at("2027-02-02 10:00")
    bot.deliver(from_alan("Validation visit",
                          "We would like to apply for a validation visit."))
    bot.cycle()
    notices = bot.sent("visit-request", ISLA)
    assert len(notices) == 1
    return notices[-1]


def test_at_70_the_validator_is_told_with_the_results(bot: Harness) -> None:
    notice = body(ready_and_requested(bot))
    assert "School Culture: 78%" in notice
    assert "Professional Development: 71%" in notice
    assert "self review results" in notice  # the history
    assert bot.school(SCHOOL)["status"] == "visit_requested"
    assert len(bot.sent("acknowledgment", ALAN)) >= 1


def test_the_validators_date_is_recorded_and_the_school_told(
        bot: Harness) -> None:
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-02-03 09:00",
                 "Hello,\n\nThursday 4 March at 10am "
                 "suits me.\n\nIsla")
    assert bot.school(SCHOOL)["visit_at"] == "2027-03-04T10:00"
    told = bot.sent("visit-date", ALAN)
    assert len(told) == 1
    assert "Thursday 4 March 2027 at 10:00" in body(told[0])
    assert "visit-date" in [e["event"] for e in bot.school(SCHOOL)["history"]]


def test_an_unclear_date_is_asked_back(bot: Harness) -> None:
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-02-03 09:00", "Either 4 March or 11 March.")
    assert bot.school(SCHOOL)["visit_at"] is None
    query = bot.sent("visit-date-query", ISLA)
    assert len(query) == 1
    assert "more than one date" in body(query[0])
    assert not bot.sent("visit-date")


def test_someone_else_in_the_thread_changes_nothing(bot: Harness) -> None:
    notice = ready_and_requested(bot)
    bot.at("2027-02-03 09:00")
    bot.deliver(make_mail("Mallory <mallory@example.com>",
                          f"Re: {notice['Subject']}",
                          "Glenbrae Primary School has been awarded.",
                          In_Reply_To=str(notice["Message-ID"])))
    bot.cycle()
    assert bot.school(SCHOOL)["status"] == "visit_requested"
    assert not bot.sent("award-congratulations")


def test_awarded_is_congratulated_with_the_lead_copied(bot: Harness) -> None:
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-03-05 15:00",
                 "Digital School status awarded. "
                 "A confident, well-led school.")
    school = bot.school(SCHOOL)
    assert school["status"] == "awarded"
    assert school["visit_outcome"] == "awarded"
    sent = bot.sent("award-congratulations", ALAN)
    assert len(sent) == 1
    assert MORAG in str(sent[0]["Cc"])
    assert "A confident, well-led school." in body(sent[0])


def test_not_yet_then_new_results_and_a_new_request(bot: Harness) -> None:
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-03-05 15:00",
                 "Not yet. The coding work needs to "
                 "reach every class, and the AUP needs "
                 "updating.")
    school = bot.school(SCHOOL)
    assert school["status"] == "self_review_complete"
    assert school["visit_outcome"] == "not-yet"
    told = body(bot.sent("visit-not-yet-outcome", ALAN)[0])
    assert "reach every class" in told
    assert not bot.sent("award-congratulations")

    # Asking again with the old results: new results first, please.
    bot.at("2027-04-01 10:00")
    bot.deliver(from_alan("Validation visit again",
                          "We would like to apply for a validation visit."))
    bot.cycle()
    assert "not received updated self-review results" in body(
        bot.sent("visit-not-yet", ALAN)[-1])
    assert len(bot.sent("visit-request", ISLA)) == 1

    # New results and a new request: the validator is told again.
    bot.at("2027-04-02 10:00")
    bot.deliver(from_alan("New results and a visit", "We would like to "
                          "apply for a validation visit.\n"
                          + READY.replace("78%", "85%")))
    bot.cycle()
    assert len(bot.sent("visit-request", ISLA)) == 2
    assert "School Culture: 85%" in body(bot.sent("visit-request", ISLA)[-1])
    assert bot.school(SCHOOL)["status"] == "visit_requested"


def test_a_date_reply_saying_not_yet_of_something_else_records_no_outcome(
        bot: Harness) -> None:
    # Guards a bug: "not yet" anywhere in a reply giving the visit's date
    # was taken as the visit's outcome, and the school was told so.
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-02-03 09:00",
                 "Hello,\n\nThursday 4 March at 10am "
                 "suits me. I have not yet met the head "
                 "teacher, so I look forward to it.\n\nIsla")
    school = bot.school(SCHOOL)
    assert school["visit_outcome"] is None
    assert school["status"] == "visit_requested"
    assert not bot.sent("visit-not-yet-outcome", ALAN)
    (aside,) = bot.export()["set_aside"]
    assert "both as a visit date" in aside["reason"]


def test_an_award_is_congratulated_once_and_never_taken_back_by_a_reply(
        bot: Harness) -> None:
    # Guards two bugs: a second "awarded" in the thread congratulated the
    # school again, and a later "not yet" took the award away.
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-03-05 15:00", "Digital School status awarded.")
    isla_answers(bot, notice, "2027-03-06 10:00",
                 "Just to confirm: awarded. The "
                 "certificate will follow by post.")
    isla_answers(bot, notice, "2027-03-10 10:00",
                 "The certificate is not yet printed; "
                 "it will follow.")
    assert len(bot.sent("award-congratulations", ALAN)) == 1
    assert bot.school(SCHOOL)["status"] == "awarded"
    assert not bot.sent("visit-not-yet-outcome", ALAN)
    assert [a["reason"].endswith("already a Digital School")
            for a in bot.export()["set_aside"]] == [True, True]


def test_a_visit_moved_back_to_its_first_date_is_told_again(
        bot: Harness) -> None:
    # Guards a bug: the notice of the first date counted as sent already.
    notice = ready_and_requested(bot)
    for when, text in (("2027-02-03 09:00", "Thursday 4 March at 10am."),
                       ("2027-02-04 09:00", "Sorry, Friday 5 March at 10am."),
                       ("2027-02-05 09:00", "Back to 4 March at 10am."),
                       ("2027-02-06 09:00", "Confirming 4 March at 10am.")):
        isla_answers(bot, notice, when, text)
    assert bot.school(SCHOOL)["visit_at"] == "2027-03-04T10:00"
    told = [body(m) for m in bot.sent("visit-date", ALAN)]
    # The same date again, confirmed, is no news.
    assert len(told) == 3
    assert "Friday 5 March" in told[1] and "Thursday 4 March" in told[2]


def test_a_validator_replaced_since_the_notice_records_nothing(
        bot: Harness) -> None:
    notice = ready_and_requested(bot)
    store = bot.bot.store
    # Staff give the cluster another validator.
    school = next(s for s in store.all_schools() if s["name"] == SCHOOL)
    store.update_cluster(school["cluster_id"], {"validator": {
        "name": "Catriona Sinclair",
        "email": "catriona.sinclair@dsa.example.org"}})
    store.commit()
    isla_answers(bot, notice, "2027-03-05 15:00", "Digital School status awarded.")
    assert bot.school(SCHOOL)["status"] == "visit_requested"
    assert not bot.sent("award-congratulations")
    (aside,) = bot.export()["set_aside"]
    assert "no longer the cluster's validator" in aside["reason"]


def test_the_validator_naming_a_school_names_that_one_not_one_inside_it(
        bot: Harness) -> None:
    ready_and_requested(bot)  # Glenbrae Primary School asked for a visit
    store = bot.bot.store
    kirkton = next(s for s in store.all_schools()
                   if s["name"] == "Kirkton Primary School")
    store.update_school(kirkton.doc_id, {"name": "Old Glenbrae Primary School"})
    store.commit()
    people = bot.config.programme_people

    def school_named(text: str) -> str | None:
        understood = results.visit_reply_of(
            mail.parse(make_mail(f"Isla Fraser <{ISLA}>", "Visit", text)),
            store, people)
        return store.school(understood.school_id)["name"] \
            if understood is not None else None

    # Guards a bug: a name inside another's was taken for that school.
    assert school_named("Old Glenbrae Primary School is awarded.") is None
    assert school_named("Glenbrae Primary School is awarded.") == SCHOOL
    assert school_named("Glenbrae Primary Schools' visit") is None


def test_an_award_naming_the_day_of_the_visit_is_recorded(
        bot: Harness) -> None:
    # Guards a bug: "4 March", past, was read as next year's, and the
    # award taken for a new visit date as well, so set aside.
    notice = ready_and_requested(bot)
    isla_answers(bot, notice, "2027-02-03 09:00", "Thursday 4 March at 10am suits me.")
    isla_answers(bot, notice, "2027-03-05 15:00",
                 "Following my visit on 4 March, I am "
                 "pleased to say Digital School status is "
                 "awarded.")
    assert bot.school(SCHOOL)["status"] == "awarded"
    assert bot.export()["set_aside"] == []


def test_a_date_that_passed_in_the_uk_is_past_before_utc_says_so(
        bot: Harness) -> None:
    notice = ready_and_requested(bot)
    # 00:30 on Saturday 5 June 2027 in the UK: 23:30 on the 4th in UTC.
    isla_answers(bot, notice, "2027-06-05 00:30", "Friday 4 June 2027 at 10am.")
    assert bot.school(SCHOOL)["visit_at"] is None
    assert "already passed" in body(bot.sent("visit-date-query", ISLA)[-1])


# -- the date parser ----------------------------------------------------------

@pytest.mark.parametrize("text, stamp", [
    ("Thursday 4 March", "2027-03-04"),
    ("04/03/2027", "2027-03-04"),
    ("4 March at 10am", "2027-03-04T10:00"),
    ("March 4th, 2.30pm", "2027-03-04T14:30"),
    ("2027-03-04 at 09:15", "2027-03-04T09:15"),
    # A time with a dot is no date (guards a bug: it was dropped).
    ("Thursday 4 March at 9.15", "2027-03-04T09:15"),
    ("4 March 2027 at 10.05", "2027-03-04T10:05"),
    ("4 March, 2.10 pm", "2027-03-04T14:10"),
])
def test_dates_read(text: str, stamp: str) -> None:
    found = visitdate.parse(text, date(2027, 2, 1))
    assert found.found and found.stamp() == stamp


@pytest.mark.parametrize("text", [
    "Friday 4 March", "03/14/2027", "next Thursday", "4 March or 5 March",
    "1 January 2027", "4 March at 7",
])
def test_unclear_dates_are_not_guessed(text: str) -> None:
    found = visitdate.parse(text, date(2027, 2, 1))
    assert not found.found and found.problem
