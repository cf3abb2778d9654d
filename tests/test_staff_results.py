"""Self-review results for several schools, in a sheet staff attach, end
to end by email (mailbot/staffsheets.py, through mailbot/commands.py): a
real mailbot on the embedded default, the clock moved by hand, and
Authentication-Results headers as a trusted receiving server writes
them."""

from __future__ import annotations

import base64
import email.utils
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, body, make_mail, sample, workbook
from test_commands import (
    FAIL,
    MORAG,
    PASS,
    STAFF,
    digest_text,
    events,
    on_top,
    received,
    record,
    replies,
    send,
    trusting_config,
)
from tinydb.table import Document

from mailbot import staffsheets

HIGH = "Glenbrae High School"
PRIMARY = "Glenbrae Primary School"
KIRKTON = "Kirkton Primary School"
SERFS = "St Serf's RC Primary School"
BALGONIE = "Balgonie Primary School"
FIONA = "headteacher@kirkton-ps.fife.example.sch.uk"
HEAD = ("School,Leadership & Vision,Curriculum,School Culture,"
        "Professional Development,Resources & Infrastructure\n")
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
CSV = ("text", "csv")


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(trusting_config(tmp_path), "2027-01-12 09:35")
    harness.deliver(sample("01-nomination-list"))
    harness.cycle()
    yield harness
    harness.close()


def staff_mail(text: str, *files: tuple[str, bytes, tuple[str, str]],
               sender: str = STAFF) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Programme Coordinator <{sender}>"
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = "Self-review results"
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="dsa.example.org")
    message.set_content(text)
    for filename, data, (maintype, subtype) in files:
        message.add_attachment(data, maintype=maintype, subtype=subtype,
                               filename=filename)
    return message


def signed(message: EmailMessage, auth: str | None = PASS) -> bytes:
    raw = message.as_bytes()
    if auth is None:
        return on_top(raw, received())
    return on_top(raw, received(), f"Authentication-Results: {auth}")


def csv_file(rows: str, name: str = "cluster-results.csv"
             ) -> tuple[str, bytes, tuple[str, str]]:
    return name, (HEAD + rows).encode(), CSV




def percents(bot: Harness, school: str) -> dict[str, float] | None:
    review = bot.school(school)["self_review"]
    return None if review is None else dict(review["percent"])


def number(bot: Harness, school: str) -> int:
    return next(s.doc_id for s in bot.bot.store.all_schools()
                if s["name"] == school)


def message_record(bot: Harness) -> dict[str, Any]:
    [found] = [m for m in bot.bot.store.all_messages() if m["from"] == STAFF]
    return dict(found)


# -- a sheet alone, for one cluster's schools ---------------------------------

def test_a_sheet_with_no_command_is_taken_school_by_school(bot: Harness) -> None:
    sheet = csv_file("Glenbrae High,82%,75%,60%,71%,80%\n"
                     "KIRKTON P.S.,90%,88%,85%,80%,79%\n"
                     "st serfs primary,70%,70%,70%,70%,70%\n"
                     "Glenbrae,50%,50%,50%,50%,50%\n"
                     "Nowhere Academy,99%,99%,99%,99%,99%\n")
    send(bot, signed(staff_mail("Hello,\n\nThe cluster's results are "
                                "attached.\n\nThanks\n", sheet)))

    assert percents(bot, HIGH) == {
        "leadership": 82, "curriculum": 75, "culture": 60,
        "professional_development": 71, "resources": 80}
    assert percents(bot, KIRKTON) == {
        "leadership": 90, "curriculum": 88, "culture": 85,
        "professional_development": 80, "resources": 79}
    assert percents(bot, SERFS) == {
        "leadership": 70, "curriculum": 70, "culture": 70,
        "professional_development": 70, "resources": 70}
    # "Glenbrae" fits two schools: neither gets its row.
    assert percents(bot, PRIMARY) is None
    assert percents(bot, BALGONIE) is None

    [message] = bot.sent("command-reply", STAFF)
    assert "Your commands: 3 done, 2 refused" in str(message["Subject"])
    [reply] = replies(bot)
    assert (f"results for Glenbrae High in 'cluster-results.csv': stored for "
            f"#{number(bot, HIGH)} {HIGH} in Glenbrae Cluster: Leadership & "
            "Vision 82%, "
            "Use of Digital Technology to Deliver the Curriculum 75%, School "
            "Culture 60%, Professional Development 71%, Resources & "
            "Infrastructure 80%; below 70% or not given: School Culture"
            ) in reply
    assert (f"results for KIRKTON P.S. in 'cluster-results.csv': stored for "
            f"#{number(bot, KIRKTON)} {KIRKTON} in Glenbrae Cluster") in reply
    assert "70% or more in every criterion" in reply
    assert (f"results for Glenbrae in 'cluster-results.csv': it could be any "
            f"of 2: #{number(bot, HIGH)} {HIGH} in Glenbrae Cluster; "
            f"#{number(bot, PRIMARY)} {PRIMARY} in Glenbrae Cluster; write "
            "the school's number in the sheet instead") in reply
    assert ("results for Nowhere Academy in 'cluster-results.csv': no school "
            "is called that; nothing stored") in reply

    # The history of each school, as for a school's own results.
    [event] = [h for h in bot.school(KIRKTON)["history"]
               if h["event"] == "self-review-results"]
    assert event["detail"] == (
        "Leadership & Vision 90%, Use of Digital Technology to Deliver the "
        "Curriculum 88%, School Culture 85%, Professional Development 80%, "
        "Resources & Infrastructure 79%; 70% or more in every criterion "
        f"(sent by {STAFF} in the sheet 'cluster-results.csv')")
    assert bot.school(KIRKTON)["self_review"]["problems"] == []
    # What was not stored is in the digest's refusals: one a sheet.
    [refusal] = events(bot, "command-refused")
    assert refusal.startswith(
        f"{STAFF}: the sheet 'cluster-results.csv': 2 not stored: "
        "\"results for Glenbrae in 'cluster-results.csv'\": it could be any "
        "of 2")
    found = digest_text(bot)
    assert "Nowhere Academy" in found and "could be any of 2" in found
    # Staff sent them: the schools are not sent a receipt.
    assert bot.sent("results-receipt") == []
    handled = message_record(bot)
    assert handled["outcome"] == "handled"
    assert handled["reason"].endswith(
        "results from a sheet stored for 3 schools, 2 not")


def test_a_workbook_of_counts_beside_a_command(bot: Harness) -> None:
    book = workbook([
        ["School", "Criterion", "Addressed", "Partially", "Not addressed"],
        ["Glenbrae Primary", "Leadership & Vision", 9, 2, 1],
        ["Glenbrae Primary", "School Culture", 4, 0, 0],
        ["Kirkton PS", "Resources & Infrastructure", 6, 2, 2],
    ])
    send(bot, signed(staff_mail("award Balgonie\n",
                                ("results.xlsx", book, XLSX))))
    review = bot.school(PRIMARY)["self_review"]
    assert review["percent"] == {"leadership": 75, "culture": 100}
    assert review["counts"] == {
        "leadership": {"addressed": 9, "partially": 2, "not_addressed": 1},
        "culture": {"addressed": 4, "partially": 0, "not_addressed": 0}}
    assert review["estimated"] == ["culture", "leadership"]
    assert percents(bot, KIRKTON) == {"resources": 60}
    assert bot.school(BALGONIE)["status"] == "awarded"
    [message] = bot.sent("command-reply", STAFF)
    assert "Your commands: 3 done, 0 refused" in str(message["Subject"])
    [reply] = replies(bot)
    assert ("Leadership & Vision 75% (estimated from 9 addressed, 2 "
            "partially, 1 not addressed)") in reply
    # Balgonie held the status before the programme: a correction, with
    # no congratulations.
    assert (f"award Balgonie: {BALGONIE}: already a Digital School → "
            "awarded; no congratulations, as it was a Digital School "
            "already") in reply
    assert bot.sent("award-congratulations") == []


def test_new_results_go_over_the_old_one_criterion_at_a_time(
        bot: Harness) -> None:
    send(bot, signed(staff_mail("", csv_file(
        "Kirkton Primary School,60%,65%,70%,75%,80%\n"))))
    send(bot, signed(staff_mail("", ("update.csv",
                                     b"School,School Culture\nKirkton,90%\n",
                                     CSV))), "2027-01-12 10:05")
    assert percents(bot, KIRKTON) == {
        "leadership": 60, "curriculum": 65, "culture": 90,
        "professional_development": 75, "resources": 80}
    assert len([h for h in bot.school(KIRKTON)["history"]
                if h["event"] == "self-review-results"]) == 2


# -- names --------------------------------------------------------------------

def test_a_number_picks_out_a_school_and_must_fit_its_name(bot: Harness) -> None:
    primary, kirkton = number(bot, PRIMARY), number(bot, KIRKTON)
    send(bot, signed(staff_mail("", csv_file(
        f"#{primary},81%,82%,83%,84%,85%\n"
        f"Glenbrae High (#{kirkton}),70%,70%,70%,70%,70%\n"
        "#99,70%,70%,70%,70%,70%\n"))))
    assert percents(bot, PRIMARY) == {
        "leadership": 81, "curriculum": 82, "culture": 83,
        "professional_development": 84, "resources": 85}
    assert percents(bot, KIRKTON) is None
    assert percents(bot, HIGH) is None
    [reply] = replies(bot)
    assert f"#{kirkton} is {KIRKTON}, not Glenbrae High; nothing stored" \
        in reply
    assert "there is no school #99; nothing stored" in reply


def test_a_school_named_twice_gets_nothing(bot: Harness) -> None:
    send(bot, signed(staff_mail("", csv_file(
        "Kirkton PS,90%,90%,90%,90%,90%\n"
        "Kirkton Primary School,40%,40%,40%,40%,40%\n"
        "St Serf's RC Primary,75%,75%,75%,75%,75%\n"))))
    assert percents(bot, KIRKTON) is None
    assert percents(bot, SERFS) is not None
    [reply] = replies(bot)
    assert (f"#{number(bot, KIRKTON)} {KIRKTON} is named more than once (as "
            "Kirkton PS in 'cluster-results.csv' and as Kirkton Primary "
            "School in 'cluster-results.csv'); nothing stored for it") in reply
    assert "1 done, 2 refused" in str(
        bot.sent("command-reply", STAFF)[0]["Subject"])


@pytest.mark.parametrize("written, found", [
    ("Kirkton Primary School", KIRKTON),
    ("kirkton primary", KIRKTON),
    ("Kirkton PS", KIRKTON),
    ("  KIRKTON   P.S. ", KIRKTON),
    ("Kirkton", KIRKTON),
    ("St Serf's", SERFS),
    ("Saint Serfs R.C. Primary", SERFS),
    ("St. Serf’s RC PS", SERFS),
    ("Glenbrae High", HIGH),
    ("Glenbrae HS", HIGH),
    ("Glenbrae Primary School and Nursery Class", PRIMARY),
    ("Glenbrae", None),          # two schools
    ("Kirkton High School", None),  # Kirkton is a primary
    ("Kirkton Academy", None),
    ("Primary School", None),
    ("Kirkt", None),             # no guessing from part of a word
    ("", None),
])
def test_names_in_a_sheet(bot: Harness, written: str, found: str | None
                          ) -> None:
    schools = bot.bot.store.all_schools()
    school, candidates, why = staffsheets.find_school(written, schools)
    if found is None:
        assert school is None and (candidates or why)
    else:
        assert school is not None and school["name"] == found
        assert candidates == [] and why == ""


def test_the_same_name_in_two_clusters_is_listed_with_both(bot: Harness
                                                            ) -> None:
    send(bot, make_mail("Jo Bell <jo@kn.example.org>",
                        "Cluster nomination - Kirkcaldy North",
                        "Cluster name: Kirkcaldy North\n"
                        "Local authority: Fife\n"
                        "Lead contact: Jo Bell, jo@kn.example.org\n"
                        "Schools:\n1. Kirkton Primary School (primary) - "
                        "Ann Low - ann@kps2.example.org\n"), "2027-01-12 09:50")
    kirktons = sorted(s.doc_id for s in bot.bot.store.all_schools()
                      if s["name"] == KIRKTON)
    assert len(kirktons) == 2
    send(bot, signed(staff_mail("", csv_file(
        "Kirkton Primary School,90%,90%,90%,90%,90%\n"
        f"#{kirktons[1]},80%,80%,80%,80%,80%\n"))), "2027-01-12 10:05")
    first, second = (bot.bot.store.school(n) for n in kirktons)
    assert first.get("self_review") is None
    assert second["self_review"]["percent"]["leadership"] == 80
    [reply] = replies(bot)
    assert (f"could be any of 2: #{kirktons[0]} {KIRKTON} in Glenbrae "
            f"Cluster; #{kirktons[1]} {KIRKTON} in Kirkcaldy North") in reply
    # A school of another cluster than the sheet's others: the reply says
    # which cluster each school stored is in.
    assert (f"results for #{kirktons[1]} in 'cluster-results.csv': stored "
            f"for #{kirktons[1]} {KIRKTON} in Kirkcaldy North: Leadership & "
            "Vision 80%") in reply


# -- what the reader found ------------------------------------------------------

def test_problems_are_listed_with_the_school_or_the_sheet(bot: Harness) -> None:
    sheet = csv_file("Kirkton,90%,abc,85%,80%,79%\n"
                     "Glenbrae High,82%,,60%,71%,80%\n"
                     ",50%,50%,50%,50%,50%\n")
    send(bot, signed(staff_mail("", sheet)))
    assert percents(bot, KIRKTON) == {
        "leadership": 90, "culture": 85, "professional_development": 80,
        "resources": 79}
    review = bot.school(HIGH)["self_review"]
    assert review["problems"] == [
        ("Glenbrae High: no value for Use of Digital Technology to Deliver "
         "the Curriculum")]
    [reply] = replies(bot)
    assert ("the sheet also says: Glenbrae High: no value for Use of Digital "
            "Technology to Deliver the Curriculum") in reply
    assert ("the sheet 'cluster-results.csv': row 2, Use of Digital "
            "Technology to Deliver the Curriculum: 'abc' is not a "
            "percentage") in reply
    assert ("the sheet 'cluster-results.csv': row 4: results with no school "
            "name") in reply


def test_a_sheet_naming_no_school_is_not_applied(bot: Harness) -> None:
    own = (b"Criterion,Score\nLeadership & Vision,82%\nCurriculum,75%\n"
           b"School Culture,60%\nProfessional Development,71%\n"
           b"Resources & Infrastructure,80%\n")
    before = record(bot)
    send(bot, signed(staff_mail("", ("results.csv", own, CSV))))
    assert record(bot) == before
    [reply] = replies(bot)
    assert ("results in 'results.csv' that name no school: nothing stored: a "
            "sheet from staff needs a column naming the school") in reply


# -- what is not taken ----------------------------------------------------------

@pytest.mark.parametrize("auth", [None, FAIL])
def test_unauthenticated_staff_mail_with_a_sheet_changes_nothing(
        bot: Harness, auth: str | None) -> None:
    before = record(bot)
    send(bot, signed(staff_mail("", csv_file(
        "Kirkton,90%,90%,90%,90%,90%\n")), auth=auth))
    assert record(bot) == before
    [message] = bot.sent("command-reply")
    assert str(message["To"]) == STAFF
    assert "Your commands were not carried out" in str(message["Subject"])
    text = body(message)
    assert "nothing was changed" in text
    assert "the results in the sheet 'cluster-results.csv'" in text
    assert message_record(bot)["outcome"] == "set_aside"
    assert "the results in the sheet 'cluster-results.csv'" in \
        events(bot, "command-unauthenticated")[0]
    assert bot.export()["set_aside"][0]["from"] == STAFF


def test_a_sheet_from_someone_not_staff_is_not_taken_as_staff(
        bot: Harness) -> None:
    # The lead contact is also Glenbrae High's contact: that school's row
    # is taken as the school's own results (results.py); the rows of the
    # cluster's other schools are not taken from her.
    lead = staff_mail("Our cluster's results.\n", csv_file(
        "Glenbrae High School,82%,75%,60%,71%,80%\n"
        "Kirkton Primary School,90%,90%,90%,90%,90%\n"), sender=MORAG)
    send(bot, signed(lead, auth=None))
    assert percents(bot, KIRKTON) is None
    assert percents(bot, HIGH) == {
        "leadership": 82, "curriculum": 75, "culture": 60,
        "professional_development": 71, "resources": 80}
    assert len(bot.sent("results-receipt", MORAG)) == 1
    assert bot.sent("command-reply") == []


def test_a_sheet_inside_a_forwarded_message_is_not_taken(bot: Harness) -> None:
    inner = staff_mail("Here are our results.\n", csv_file(
        "Kirkton,90%,90%,90%,90%,90%\n"), sender="someone@evil.example")
    outer = staff_mail("For the record: the message below came in.\n")
    outer.add_attachment(inner)
    before = record(bot)
    send(bot, signed(outer))
    assert record(bot) == before
    [reply] = replies(bot)
    assert ("the sheet 'cluster-results.csv': it is inside a forwarded "
            "message (or has no file name), so it is not taken") in reply


def test_staff_mail_with_a_sheet_of_no_results_is_as_before(
        bot: Harness) -> None:
    sheet = ("dates.csv", b"Date,Event\n2027-03-04,Visit\n", CSV)
    send(bot, signed(staff_mail("Hello,\n\nFor your files.\n", sheet)))
    assert bot.sent("command-reply") == []
    handled = message_record(bot)
    assert handled["outcome"] == "set_aside"
    assert "staff mail" in handled["reason"]


def test_a_results_sheet_and_other_files(bot: Harness) -> None:
    send(bot, signed(staff_mail("", csv_file(
        "Kirkton,90%,90%,90%,90%,90%\n"),
        ("minutes.pdf", b"%PDF-1.4 not a sheet", ("application", "pdf")),
        ("dates.csv", b"Date,Event\n2027-03-04,Visit\n", CSV))))
    assert percents(bot, KIRKTON) == {
        "leadership": 90, "curriculum": 90, "culture": 90,
        "professional_development": 90, "resources": 90}
    assert "Your commands: 1 done, 1 refused" in str(
        bot.sent("command-reply", STAFF)[0]["Subject"])
    [reply] = replies(bot)
    assert "the sheet 'dates.csv': no self-review results were found in it" \
        in reply
    assert "minutes.pdf" not in reply
    assert bot.sent("results-receipt", FIONA) == []


def test_a_sheet_too_large_to_read_is_listed(bot: Harness) -> None:
    big = ("big.csv", b"School,Leadership\n" + b"x" * 5_100_000, CSV)
    send(bot, signed(staff_mail("", csv_file(
        "Kirkton,90%,90%,90%,90%,90%\n"), big)))
    assert percents(bot, KIRKTON) is not None
    [reply] = replies(bot)
    assert ("the sheet 'big.csv': not read: attachment 'big.csv' not read "
            "(5,100,018 bytes, over the 5,000,000 read from a spreadsheet)"
            ) in reply
    assert "1 done, 1 refused" in str(
        bot.sent("command-reply", STAFF)[0]["Subject"])


def test_a_file_name_in_encoded_words_is_the_staff_members_own(
        bot: Harness) -> None:
    """Outlook writes a name that is not ASCII as encoded-words, which the
    MIME tree and the attachments list spell differently."""
    # "résultats.csv"
    encoded = "=?utf-8?B?csOpc3VsdGF0cy5jc3Y=?="
    data = base64.b64encode(
        (HEAD + "Kirkton,90%,90%,90%,90%,90%\n").encode()).decode()
    raw = "\r\n".join([
        f"From: Programme Coordinator <{STAFF}>",
        "To: programme@dsa.example.org", "Subject: Results",
        f"Message-ID: {email.utils.make_msgid(domain='dsa.example.org')}",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"', "",
        "--b1", "Content-Type: text/plain", "", "Attached.", "",
        "--b1", f'Content-Type: text/csv; name="{encoded}"',
        f'Content-Disposition: attachment; filename="{encoded}"',
        "Content-Transfer-Encoding: base64", "", data, "--b1--", ""])
    send(bot, on_top(raw.encode(), received(),
                     f"Authentication-Results: {PASS}"))
    assert percents(bot, KIRKTON) == {
        "leadership": 90, "curriculum": 90, "culture": 90,
        "professional_development": 90, "resources": 90}
    [reply] = replies(bot)
    assert "results for Kirkton in 'résultats.csv': stored for" in reply


# -- hostile sheets -------------------------------------------------------------

def test_a_long_sheet_says_what_was_not_read_and_lists_names_once(
        bot: Harness) -> None:
    """Rows past the 2,000 read are named in the reply; of names that fit
    no school, the first 50 are listed and the rest counted; the history
    has one refusal for the sheet."""
    rows = "".join(f"Nowhere {i},80%,80%,80%,80%,80%\n" for i in range(2500))
    before = record(bot)
    send(bot, signed(staff_mail("", csv_file(
        rows + "Kirkton,90%,90%,90%,90%,90%\n", "long.csv"))))
    assert record(bot) == before  # Kirkton, on row 2,502, was not read
    [message] = bot.sent("command-reply", STAFF)
    assert "Your commands: 0 done, 52 refused" in str(message["Subject"])
    [reply] = replies(bot)
    assert ("the sheet 'long.csv': only its first 2,000 rows were read: any "
            "row after row 2,000 was not read, and nothing in it stored; send "
            "those rows in another sheet") in reply
    assert ("results for Nowhere 49 in 'long.csv': no school is called that; "
            "nothing stored") in reply
    assert "Nowhere 50 " not in reply
    assert ("1,949 more names in 'long.csv': they fit no school, or several, "
            "and are not listed one by one (only the first 50 such names "
            "are); nothing stored for them") in reply
    assert len(reply) < 8_000
    [refusal] = events(bot, "command-refused")
    assert refusal.startswith(
        f"{STAFF}: the sheet 'long.csv': 2,000 not stored: \"the sheet "
        "'long.csv'\": only its first 2,000 rows were read")
    assert refusal.endswith("; and 42 more")
    assert message_record(bot)["reason"].endswith(
        "results from a sheet stored for 0 schools, 2000 not")


BROKEN_BOOK = b"PK\x03\x04" + b"junk" * 100


@pytest.mark.parametrize("file, said", [
    (("r.csv", (HEAD + "Kirkton,-10%,101%,150,-5,200%\n").encode(), CSV),
     ("the sheet 'r.csv': no self-review results were found in it: nothing "
      "could be stored, as the sheet says: row 2, Leadership & Vision: "
      "'-10%' is below 0%; row 2, Professional Development: '-5' is below "
      "0%; row 2, Use of Digital Technology to Deliver the Curriculum: "
      "'101%' is over 100%; row 2, School Culture: '150' is over 100%; row "
      "2, Resources & Infrastructure: '200%' is over 100%")),
    (("r.csv", (HEAD + "Kirkton,=A1,=B2,TBC?,high,85 pc\n").encode(), CSV),
     ("the sheet 'r.csv': no self-review results were found in it: nothing "
      "could be stored, as the sheet says: row 2, Leadership & Vision: "
      "'=A1' is not a percentage")),
    (("r.csv", (HEAD + "Kirkton,90%,90%,90%,90%,90%\n").encode("utf-32"),
      CSV),
     ("the sheet 'r.csv': not read: its text is in an encoding that is not "
      "read (save it as \"CSV UTF-8\" or as an Excel workbook); nothing "
      "stored from it")),
    (("r.xlsx", BROKEN_BOOK, XLSX),
     ("the sheet 'r.xlsx': not read: it is empty, or damaged, or not the CSV "
      "or XLSX file its name says; nothing stored from it")),
    (("r.csv", b"", CSV),
     ("the sheet 'r.csv': not read: it is empty, or damaged, or not the CSV "
      "or XLSX file its name says; nothing stored from it")),
])
def test_a_sheet_giving_nothing_is_answered_with_why(
        bot: Harness, file: tuple[str, bytes, tuple[str, str]], said: str
        ) -> None:
    before = record(bot)
    send(bot, signed(staff_mail("Results attached.\n", file)))
    assert record(bot) == before
    [message] = bot.sent("command-reply", STAFF)
    assert "Your commands: 0 done, 1 refused" in str(message["Subject"])
    [reply] = replies(bot)
    assert said in reply
    [refusal] = events(bot, "command-refused")
    assert refusal.startswith(f"{STAFF}: the sheet '{file[0]}': 1 not stored: ")
    handled = message_record(bot)
    assert handled["outcome"] == "handled"
    assert handled["reason"].endswith(
        "results from a sheet stored for 0 schools, 1 not")


def test_staff_mail_with_no_sheet_is_set_aside_as_before(bot: Harness) -> None:
    send(bot, signed(staff_mail(
        "Hello,\n\nMinutes attached.\n",
        ("minutes.pdf", b"%PDF-1.4 not a sheet", ("application", "pdf")))))
    assert bot.sent("command-reply") == []
    handled = message_record(bot)
    assert handled["outcome"] == "set_aside"
    assert "staff mail" in handled["reason"]


@pytest.mark.parametrize("rows, ways", [
    # The same spelling twice, with other values or the same.
    ("Kirkton,90%,90%,90%,90%,90%\nKirkton,40%,40%,40%,40%,40%\n",
     "as Kirkton in 'cluster-results.csv', in more than one row"),
    ("Kirkton,90%,90%,90%,90%,90%\nKirkton,90%,90%,90%,90%,90%\n",
     "as Kirkton in 'cluster-results.csv', in more than one row"),
    # Spelled in two ways (as before).
    ("Kirkton,90%,90%,90%,90%,90%\nKIRKTON,40%,40%,40%,40%,40%\n",
     ("as Kirkton in 'cluster-results.csv' and as KIRKTON in "
      "'cluster-results.csv'")),
])
def test_a_school_named_twice_the_same_way_gets_nothing(
        bot: Harness, rows: str, ways: str) -> None:
    send(bot, signed(staff_mail("", csv_file(
        rows + "Glenbrae High,75%,75%,75%,75%,75%\n"))))
    assert percents(bot, KIRKTON) is None
    assert percents(bot, HIGH) is not None
    [reply] = replies(bot)
    assert (f"results for Kirkton in 'cluster-results.csv': "
            f"#{number(bot, KIRKTON)} {KIRKTON} is named more than once "
            f"({ways}); nothing stored for it: send its results once") in reply


def test_one_school_and_criterion_twice_in_rows_gets_nothing(
        bot: Harness) -> None:
    sheet = ("School,Criterion,Score\n"
             "Kirkton,Leadership,80%\nKirkton,Leadership,40%\n"
             "Kirkton,Culture,90%\n"
             "Glenbrae High,Leadership,80%\nGlenbrae High,Culture,90%\n")
    send(bot, signed(staff_mail("", ("long.csv", sheet.encode(), CSV))))
    assert percents(bot, KIRKTON) is None
    # A school and criterion a row is one school named once.
    assert percents(bot, HIGH) == {"leadership": 80, "culture": 90}
    [reply] = replies(bot)
    assert (f"#{number(bot, KIRKTON)} {KIRKTON} is named more than once (as "
            "Kirkton in 'long.csv', in more than one row); nothing stored"
            ) in reply


def test_a_number_before_the_name_as_replies_show_it(bot: Harness) -> None:
    kirkton, primary, high = (number(bot, KIRKTON), number(bot, PRIMARY),
                              number(bot, HIGH))
    send(bot, signed(staff_mail("", csv_file(
        f"#{kirkton} Kirkton Primary School,81%,81%,81%,81%,81%\n"
        f"(#{primary}) Glenbrae Primary,82%,82%,82%,82%,82%\n"
        f"#{high} - Kirkton,83%,83%,83%,83%,83%\n"))))
    assert percents(bot, KIRKTON) == dict.fromkeys(
        ["leadership", "curriculum", "culture", "professional_development",
         "resources"], 81)
    assert (percents(bot, PRIMARY) or {}).get("leadership") == 82
    assert percents(bot, HIGH) is None
    [reply] = replies(bot)
    assert (f"results for #{kirkton} Kirkton Primary School in "
            f"'cluster-results.csv': stored for #{kirkton} {KIRKTON} in "
            "Glenbrae Cluster") in reply
    assert (f"results for #{high} - Kirkton in 'cluster-results.csv': "
            f"#{high} is {HIGH}, not Kirkton; nothing stored") in reply


def test_names_are_matched_against_an_index() -> None:
    """2,000 names against 3,000 schools: each name looks only at the
    schools that could fit it (before the index, about 2 s)."""
    schools = [Document({"name": f"School{i} Primary School",
                         "cluster_id": i // 6}, doc_id=i + 1)
               for i in range(3000)]
    started = time.perf_counter()
    names = staffsheets.SchoolNames(schools)
    found = [names.find(f"School{i}")[0] for i in range(2000)]
    missed = [names.find(f"Nowhere {i} High") for i in range(2000)]
    took = time.perf_counter() - started
    assert [s.doc_id for s in found if s is not None] == list(range(1, 2001))
    assert all(m == (None, [], "no school is called that") for m in missed)
    assert took < 0.5


def test_invisible_characters_are_shown_escaped(bot: Harness) -> None:
    send(bot, signed(staff_mail("", csv_file(
        "Glenbrae\u200f High,70%,70%,70%,70%,70%\n"
        "\u202eNowhere\u202c Academy,90%,90%,90%,90%,90%\n"))))
    assert percents(bot, HIGH) == dict.fromkeys(
        ["leadership", "curriculum", "culture", "professional_development",
         "resources"], 70)
    [reply] = replies(bot)
    assert not any(c in reply for c in "\u200f\u202e\u202c")
    assert (f"results for Glenbrae<U+200F> High in 'cluster-results.csv': "
            f"stored for #{number(bot, HIGH)} {HIGH} in Glenbrae Cluster"
            ) in reply
    assert ("results for <U+202E>Nowhere<U+202C> Academy in "
            "'cluster-results.csv': no school is called that") in reply
    [refusal] = events(bot, "command-refused")
    assert "<U+202E>Nowhere<U+202C> Academy" in refusal


def test_a_zero_width_space_does_not_hide_a_name(bot: Harness) -> None:
    send(bot, signed(staff_mail("", csv_file(
        "Kirk\u200bton,90%,90%,90%,90%,90%\n"))))
    assert percents(bot, KIRKTON) is not None
    [reply] = replies(bot)
    assert ("results for Kirk<U+200B>ton in 'cluster-results.csv': stored "
            f"for #{number(bot, KIRKTON)} {KIRKTON}") in reply
