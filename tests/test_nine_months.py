"""One cluster through the whole programme, by email only, with the clock
moved through nine months: nomination, confirmation by staff, invitations,
self-reviews and results, the validator and the matrix of supports,
visits, outcomes and awards, stalls, the 3, 6 and 9 month reports, "where
do we stand?", and at the end each school's whole history in the export.

Nothing is written to the record here: every change comes from mail
delivered to the programme mailbox or from the clock (the harness's
`at` and `cycle`)."""

from __future__ import annotations

import csv
import email.utils
import io
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, body, make_mail, workbook
from test_commands import PASS, trusting_config

from mailbot.supports import CSV_COLUMNS

STAFF = "coordinator@dsa.example.org"
ISLA = "isla.fraser@dsa.example.org"
CATRIONA = "catriona.sinclair@dsa.example.org"
FIFE = "digital.learning@fife.example.gov.uk"
ES = "digital.schools@educationscotland.example.gov.uk"
LEAD = "r.paterson@carnbee-ls.fife.example.org"        # Ruth, the lead
ANNA = "a.brodie@carnbee-ps.fife.example.sch.uk"       # awarded first time
BRIAN = "b.kerr@lochend-ps.fife.example.sch.uk"        # not yet, then awarded
CLAIRE = "c.dunn@eastermuir-ps.fife.example.sch.uk"    # below 70%, then ready
DAVID = "d.swan@balcarres-hs.fife.example.sch.uk"      # stalls

CARNBEE = "Carnbee Primary School"
LOCHEND = "Lochend Primary School"
EASTER = "Easter Muir Primary School"
BALCARRES = "Balcarres High School"
SCHOOLS = {ANNA: CARNBEE, BRIAN: LOCHEND, CLAIRE: EASTER, DAVID: BALCARRES}
CLUSTER = "Carnbee Cluster"

CURRICULUM = "Use of Digital Technology to Deliver the Curriculum"

# The lead forgets the council: the nomination waits for staff.
NOMINATION = f"""Hello,

We would like to nominate our cluster for the Cluster Initiative.

Cluster name: {CLUSTER}
Lead contact: Ruth Paterson, {LEAD}

Schools:
1. {CARNBEE} (primary) - Anna Brodie - {ANNA}
2. {LOCHEND} (primary) - Brian Kerr - {BRIAN}
3. {EASTER} (primary) - Claire Dunn - {CLAIRE}
4. {BALCARRES} (secondary) - David Swan - {DAVID}

Best wishes,
Ruth
"""

LOCHEND_FIRST = ("Leadership & Vision: 74%\nCurriculum: 71%\n"
                 "School Culture: 80%\nProfessional Development: 70%\n"
                 "Resources & Infrastructure: 76%\n")
LOCHEND_BETTER = ("Leadership & Vision: 81%\nCurriculum: 84%\n"
                  "School Culture: 86%\nProfessional Development: 79%\n"
                  "Resources & Infrastructure: 80%\n")
# Counts of statements: addressed over all of them (an estimate).
EASTER_COUNTS = (
    "Leadership & Vision: addressed 9, partially 2, not addressed 1\n"
    "Curriculum: addressed 6, partially 3, not addressed 3\n"
    "School Culture: addressed 10, partially 1, not addressed 1\n"
    "Professional Development: addressed 5, partially 3, not addressed 2\n"
    "Resources & Infrastructure: addressed 8, partially 1, not addressed 1\n")
EASTER_BETTER = ("Leadership & Vision: 78%\nCurriculum: 73%\n"
                 "School Culture: 84%\nProfessional Development: 72%\n"
                 "Resources & Infrastructure: 81%\n")


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(trusting_config(tmp_path), "2027-01-12 09:35")
    yield harness
    harness.close()


# -- mail as people write it ----------------------------------------------

def staff_command(text: str) -> bytes:
    """Commands from staff, as the trusted receiving server passes them on
    (its Authentication-Results on top), like tests/test_commands.py."""
    raw = make_mail(f"Programme Coordinator <{STAFF}>", "Commands", text)
    return f"Authentication-Results: {PASS}\r\n".encode() + raw


def from_school(address: str, subject: str, text: str) -> bytes:
    return make_mail(address, subject, text)


def with_attachment(sender: str, subject: str, text: str, filename: str,
                    data: bytes, maintype: str, subtype: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Digital Schools Programme <programme@dsa.example.org>"
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="school.example.org")
    message.set_content(text)
    message.add_attachment(data, maintype=maintype, subtype=subtype,
                           filename=filename)
    return message.as_bytes()


def reply(to: EmailMessage, sender: str, text: str) -> bytes:
    """An answer in the thread of a message mailbot sent."""
    return make_mail(sender, f"Re: {to['Subject']}", text,
                     In_Reply_To=str(to["Message-ID"]),
                     References=str(to["Message-ID"]))


def reports(sent: list[EmailMessage], months: int) -> list[str]:
    """The texts of the progress reports sent at `months`, checked to go
    to the lead, the validator and staff, one each."""
    found = kind(sent, "progress-report")
    assert sorted(a for m in found for a in to(m)) == sorted(
        [LEAD, ISLA, STAFF])
    for report in found:
        assert str(report["Subject"]).startswith(
            f"{CLUSTER}: progress at {months} months")
    return [body(report) for report in found]


def carnbee_workbook() -> bytes:
    return workbook([
        ["Criterion", "Addressed", "Partially", "Not addressed", "Percent"],
        *([name, None, None, None, share] for name, share in [
            ("Leadership & Vision", 0.85), (CURRICULUM, 0.78),
            ("School Culture", 0.9), ("Professional Development", 0.72),
            ("Resources & Infrastructure", 0.8)])])


# -- what mailbot sent ------------------------------------------------------

class Journey:
    """The harness, and what each step sent."""

    def __init__(self, bot: Harness) -> None:
        self.bot = bot
        self.seen: set[str] = set()

    def step(self, when: str, *raws: bytes) -> list[EmailMessage]:
        """Move the clock, deliver the mail, run one cycle: what was sent."""
        self.bot.at(when)
        self.bot.deliver(*raws)
        self.bot.cycle()
        new = [m for m in self.bot.sent()
               if str(m["Message-ID"]) not in self.seen]
        self.seen.update(str(m["Message-ID"]) for m in new)
        return new


def kind(messages: list[EmailMessage], wanted: str) -> list[EmailMessage]:
    return [m for m in messages if str(m["X-Mailbot-Kind"]) == wanted]


def kinds(messages: list[EmailMessage]) -> list[str]:
    """Kinds sent in a step, leaving out the timed digests for staff and
    validators, which each working day or week brings."""
    return sorted(str(m["X-Mailbot-Kind"]) for m in messages
                  if str(m["X-Mailbot-Kind"]) not in ("digest",
                                                      "progress-digest"))


def to(message: EmailMessage) -> set[str]:
    return {a.addr_spec.lower() for a in message["To"].addresses}


def cc(message: EmailMessage) -> set[str]:
    if message["Cc"] is None:
        return set()
    return {a.addr_spec.lower() for a in message["Cc"].addresses}


def one(messages: list[EmailMessage], wanted: str, address: str
        ) -> EmailMessage:
    """The one message of that kind sent to that address in a step."""
    found = [m for m in kind(messages, wanted) if address in to(m)]
    assert len(found) == 1, (wanted, address, [str(m["Subject"])
                                               for m in messages])
    return found[0]


def csv_rows(message: EmailMessage) -> list[dict[str, str]]:
    files = list(message.iter_attachments())
    assert [f.get_filename() for f in files] == ["matrix-of-supports.csv"]
    data = files[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def status(bot: Harness, name: str) -> str:
    return str(bot.school(name)["status"])


# -- the journey -------------------------------------------------------------

def nominated_and_invited(j: Journey) -> None:
    """From the nomination to the schools' self-reviews, all but one."""
    bot = j.bot

    # Tuesday 12 January 2027: Ruth nominates four schools but leaves out
    # the council; she is asked for it, and nothing starts yet.
    sent = j.step("2027-01-12 09:35", from_school(
        f"Ruth Paterson <{LEAD}>", f"Nomination: {CLUSTER}", NOMINATION))
    asked = one(sent, "missing-information", LEAD)
    assert CLUSTER in str(asked["Subject"])
    assert "local authority" in body(asked).lower()
    assert kinds(sent) == ["missing-information"]
    assert bot.cluster("Carnbee")["status"] == "incomplete"

    # Staff set the council and confirm, by authenticated email: the
    # lead is acknowledged and welcomed, Fife and Education Scotland are
    # told, and the four schools are invited.
    sent = j.step("2027-01-12 10:00", staff_command(
        f"Please set council of {CLUSTER} to Fife.\n"
        f"confirm nomination {CLUSTER}\n\nThanks\n"))
    answer = one(sent, "command-reply", STAFF)
    assert "2 done, 0 refused" in str(answer["Subject"])
    assert "confirmed with 4 schools" in body(answer)
    assert kinds(sent) == ["acknowledgment", "command-reply",
                           "council-notice", "council-notice", "invitation",
                           "invitation", "invitation", "invitation", "welcome"]
    assert {str(m["X-Mailbot-Kind"]) for m in sent if LEAD in to(m)} == {
        "acknowledgment", "welcome"}
    for notice in kind(sent, "council-notice"):
        assert str(notice["Subject"]).startswith(f"{CLUSTER} (Fife) has joined")
    assert {a for m in kind(sent, "council-notice") for a in to(m)} == {
        FIFE, ES}
    invitations = {}
    for address, name in SCHOOLS.items():
        invitations[address] = one(sent, "invitation", address)
        assert name in str(invitations[address]["Subject"])
        assert "Tuesday 26 January 2027" in body(invitations[address])
    assert "Acceptable Usage Policy" in body(invitations[ANNA])   # primary
    assert "evidence" in body(invitations[DAVID]).lower()         # secondary
    cluster = bot.cluster("Carnbee")
    assert cluster["status"] == "active"
    assert cluster["local_authority"] == "Fife"
    assert cluster["lead_contact"]["email"] == LEAD

    # Thursday: Lochend replies to its invitation: registered, a comment.
    sent = j.step("2027-01-14 15:00", reply(
        invitations[BRIAN], f"Brian Kerr <{BRIAN}>",
        "Hello,\n\nWe have registered with the Digital Schools Awards. "
        "Strengths: our pupil digital leaders run a code club.\n\n"
        "Weakness: the wifi in the upper school is patchy.\n\nBrian\n"))
    receipt = one(sent, "comment-receipt", BRIAN)
    assert LOCHEND in str(receipt["Subject"])
    assert "code club" in body(receipt)

    # Monday 18th: Carnbee has finished, its results in a workbook.
    sent = j.step("2027-01-18 11:00", with_attachment(
        f"Anna Brodie <{ANNA}>", "Carnbee self-review",
        "Hello,\n\nWe have now completed the self-review. Our results are "
        "attached.\n\nAnna\n", "self-review.xlsx", carnbee_workbook(),
        "application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
    assert kinds(sent) == ["completion-receipt", "results-receipt"]
    assert "you may now apply for a validation visit" in body(
        one(sent, "results-receipt", ANNA))
    assert status(bot, CARNBEE) == "self_review_complete"
    assert bot.school(CARNBEE)["self_review"]["percent"] == {
        "leadership": 85, "curriculum": 78, "culture": 90,
        "professional_development": 72, "resources": 80}

    # Tuesday 19th, a week after the invitations: the three still at it
    # are reminded; Carnbee is not.
    sent = j.step("2027-01-19 10:00")
    assert kinds(sent) == ["reminder"] * 3
    assert {a for m in sent if str(m["X-Mailbot-Kind"]) == "reminder"
            for a in to(m)} == {BRIAN, CLAIRE, DAVID}

    # Wednesday 20th: Lochend's results in its mail, Easter Muir's as
    # counts of statements; both have finished.
    sent = j.step(
        "2027-01-20 10:00",
        from_school(f"Brian Kerr <{BRIAN}>", "Lochend self-review",
                    "Hello,\n\nWe have completed the self-review. Our "
                    "scores:\n" + LOCHEND_FIRST + "\nBrian\n"),
        from_school(f"Claire Dunn <{CLAIRE}>", "Easter Muir self-review",
                    "Hello,\n\nWe have finished the self-review. Our counts:"
                    "\n" + EASTER_COUNTS + "\nClaire\n"))
    assert kinds(sent) == ["completion-receipt", "completion-receipt",
                           "results-receipt", "results-receipt"]
    assert "you may now apply" in body(one(sent, "results-receipt", BRIAN))
    easter_receipt = body(one(sent, "results-receipt", CLAIRE))
    assert (f"{CURRICULUM}: 50% (estimated from the counts) - short of 70%"
            in easter_receipt)
    assert ("Professional Development: 50% (estimated from the counts) - "
            "short of 70%") in easter_receipt
    review = bot.school(EASTER)["self_review"]
    assert review["percent"]["culture"] == pytest.approx(83.3)
    assert set(review["estimated"]) == {
        "leadership", "curriculum", "culture", "professional_development",
        "resources"}
    assert bot.cluster("Carnbee")["validator"] is None


def validator_and_matrix(j: Journey) -> EmailMessage:
    """The cluster complete by a staff command: its validator, and the
    matrix of supports proposed to her (returned)."""
    bot = j.bot
    # Thursday 21st: Balcarres told the office by telephone; staff record
    # it by command, which completes the cluster: Isla Fraser (Graeme
    # Munro does not validate in Fife) is assigned, the lead told, and
    # the matrix of supports proposed to her.
    sent = j.step("2027-01-21 10:00", staff_command(
        f"set status of {BALCARRES} to self-review complete\n"))
    answer = body(one(sent, "command-reply", STAFF))
    assert "Isla Fraser is assigned as validator" in answer
    assert kinds(sent) == ["command-reply", "support-proposal",
                           "validator-assignment", "validator-assignment"]
    assignment = one(sent, "validator-assignment", ISLA)
    assert f"Validator assignment: {CLUSTER} (Fife)" in str(
        assignment["Subject"])
    assert "code club" in body(assignment)          # Lochend's comment
    introduction = one(sent, "validator-assignment", LEAD)
    assert "Isla Fraser" in str(introduction["Subject"])
    cluster = bot.cluster("Carnbee")
    assert cluster["status"] == "validator_assigned"
    assert cluster["validator"] == {"name": "Isla Fraser", "email": ISLA}

    # The proposal: a table (text and HTML) and the same as a CSV.
    proposal = one(sent, "support-proposal", ISLA)
    assert str(proposal["Subject"]).startswith(f"Matrix of supports: {CLUSTER}")
    text = body(proposal)
    assert "Strengths and gaps" in text and "School matching" in text
    assert f"no self-review results have reached us from {BALCARRES}" in text
    html = proposal.get_body(preferencelist=("html",))
    assert html is not None and "<table" in str(html.get_content())
    rows = csv_rows(proposal)
    ids = {s["name"]: s.doc_id for s in bot.bot.store.all_schools()}
    mentor_rows = [r for r in rows if r["support"] == "mentor"]
    assert mentor_rows
    for row in mentor_rows:
        assert ids[row["mentee_school"]] == int(row["mentee_id"])
        assert ids[row["mentor_school"]] == int(row["mentor_id"])
        assert (f"{row['mentor_school']} mentors {row['mentee_school']} in "
                f"{row['criterion']}") in text
    # Easter Muir's gap in the curriculum is covered by a strong school.
    easter_curriculum = next(r for r in rows if r["mentee_school"] == EASTER
                             and r["criterion"] == CURRICULUM)
    assert easter_curriculum["support"] == "mentor"
    assert easter_curriculum["mentor_school"] in (CARNBEE, LOCHEND)
    return proposal


def matrix_accepted(j: Journey, proposal: EmailMessage) -> str:
    """The validator accepts; each school gets its plan. Returns the
    school that mentors Easter Muir in the curriculum."""
    bot = j.bot
    mentor = next(r["mentor_school"] for r in csv_rows(proposal)
                  if r["mentee_school"] == EASTER
                  and r["criterion"] == CURRICULUM)
    # Friday 22nd: Isla accepts by reply; each school gets its part, the
    # lead copied.
    sent = j.step("2027-01-22 10:00", reply(
        proposal, f"Isla Fraser <{ISLA}>", "Thank you, I accept this.\n\nIsla"))
    assert kinds(sent) == ["support-plan"] * 4
    for address, name in SCHOOLS.items():
        plan = one(sent, "support-plan", address)
        assert str(plan["Subject"]).startswith(f"Your plan of supports: {name}")
        assert cc(plan) == {LEAD}
    easter_plan = body(one(sent, "support-plan", CLAIRE))
    assert f"{mentor}, in {CURRICULUM}" in easter_plan
    assert bot.bot.store.all_clusters()[0]["support_proposal"][
        "status"] == "accepted"
    return mentor


def test_one_cluster_through_nine_months(bot: Harness) -> None:
    j = Journey(bot)
    nominated_and_invited(j)
    proposal = validator_and_matrix(j)
    matrix_accepted(j, proposal)

    # Monday 1 February: Easter Muir asks for a visit; it is short in two
    # criteria, so it is told kindly, and Isla is not troubled.
    sent = j.step("2027-02-01 10:00", from_school(
        f"Claire Dunn <{CLAIRE}>", "Validation visit",
        "Hello,\n\nWe would like to apply for a validation visit.\n\n"
        "Claire\n"))
    not_yet = one(sent, "visit-not-yet", CLAIRE)
    assert (f"{CURRICULUM}, Professional Development are not there yet"
            in body(not_yet))
    assert "updated results" in body(not_yet)
    assert kinds(sent) == ["visit-not-yet"]
    assert status(bot, EASTER) == "self_review_complete"

    # Carnbee asks too, and is ready: Isla gets the request with its
    # results and history; Carnbee is told she has it.
    sent = j.step("2027-02-01 11:00", from_school(
        f"Anna Brodie <{ANNA}>", "Validation visit please",
        "Hello,\n\nWe would like to apply for a validation visit.\n\nAnna\n"))
    assert kinds(sent) == ["acknowledgment", "visit-request"]
    carnbee_request = one(sent, "visit-request", ISLA)
    assert CARNBEE in str(carnbee_request["Subject"])
    assert "School Culture: 90%" in body(carnbee_request)
    assert "self review results" in body(carnbee_request)     # its history
    assert "Isla Fraser" in body(one(sent, "acknowledgment", ANNA))
    assert status(bot, CARNBEE) == "visit_requested"

    # Isla answers with a date; Carnbee is told.
    sent = j.step("2027-02-02 09:00", reply(
        carnbee_request, f"Isla Fraser <{ISLA}>",
        "Hello,\n\nThursday 25 February at 10am suits me.\n\nIsla"))
    told = one(sent, "visit-date", ANNA)
    assert "Thursday 25 February 2027 at 10:00" in body(told)
    assert kinds(sent) == ["visit-date"]
    assert bot.school(CARNBEE)["visit_at"] == "2027-02-25T10:00"

    # Lochend asks; Isla gives a date.
    sent = j.step("2027-02-03 10:00", from_school(
        f"Brian Kerr <{BRIAN}>", "Visit",
        "Hello,\n\nWe would like to apply for a validation visit.\n\nBrian\n"))
    lochend_request = one(sent, "visit-request", ISLA)
    sent = j.step("2027-02-04 09:00", reply(
        lochend_request, ISLA, "Tuesday 2 March at 2pm, please.\n"))
    assert "Tuesday 2 March 2027 at 14:00" in body(
        one(sent, "visit-date", BRIAN))

    # Easter Muir sends better results: now it may apply, and does.
    sent = j.step("2027-02-15 10:00", from_school(
        f"Claire Dunn <{CLAIRE}>", "Our updated results",
        "Hello,\n\nHere are our updated results:\n" + EASTER_BETTER
        + "\nClaire\n"))
    assert kinds(sent) == ["results-receipt"]
    assert "you may now apply for a validation visit" in body(
        one(sent, "results-receipt", CLAIRE))
    sent = j.step("2027-02-16 10:00", from_school(
        f"Claire Dunn <{CLAIRE}>", "Validation visit again",
        "Hello,\n\nWe would like to apply for a validation visit.\n\n"
        "Claire\n"))
    assert kinds(sent) == ["acknowledgment", "visit-request"]
    easter_request = one(sent, "visit-request", ISLA)
    assert f"{CURRICULUM}: 73%" in body(easter_request)
    sent = j.step("2027-02-17 09:00", reply(
        easter_request, ISLA, "Wednesday 10 March at 10am.\n"))
    assert "Wednesday 10 March 2027 at 10:00" in body(
        one(sent, "visit-date", CLAIRE))

    # Monday 22 February: Balcarres has said nothing for four weeks (since
    # its plan on 22 January). It is nudged; Ruth is told, Isla copied.
    # The others are busy or waiting for their visits.
    sent = j.step("2027-02-22 10:00")
    assert kinds(sent) == ["stall-notice", "stall-nudge"]
    nudge = one(sent, "stall-nudge", DAVID)
    assert BALCARRES in str(nudge["Subject"])
    notice = one(sent, "stall-notice", LEAD)
    assert ISLA in cc(notice)
    assert BALCARRES in body(notice)
    for other in (CARNBEE, LOCHEND, EASTER):
        assert other not in body(notice)

    # Friday 26th: Carnbee is awarded and congratulated, Ruth copied.
    sent = j.step("2027-02-26 15:00", reply(
        carnbee_request, f"Isla Fraser <{ISLA}>",
        "Digital School status awarded. A confident, well-led school.\n"))
    congratulations = one(sent, "award-congratulations", ANNA)
    assert CARNBEE in str(congratulations["Subject"])
    assert cc(congratulations) == {LEAD}
    assert "A confident, well-led school." in body(congratulations)
    assert kinds(sent) == ["award-congratulations"]
    assert status(bot, CARNBEE) == "awarded"
    assert bot.school(CARNBEE)["visit_outcome"] == "awarded"

    # Wednesday 3 March: Lochend, not yet, with notes.
    sent = j.step("2027-03-03 15:00", reply(
        lochend_request, ISLA, "Not yet. The coding work needs to reach "
        "every class, and the AUP needs updating.\n"))
    told = one(sent, "visit-not-yet-outcome", BRIAN)
    assert LOCHEND in str(told["Subject"])
    assert "reach every class" in body(told)
    assert kinds(sent) == ["visit-not-yet-outcome"]
    assert status(bot, LOCHEND) == "self_review_complete"
    assert bot.school(LOCHEND)["visit_outcome"] == "not-yet"

    # Thursday 11 March: Easter Muir is awarded after its visit.
    sent = j.step("2027-03-11 11:00", reply(
        easter_request, ISLA, "Awarded: a lovely visit.\n"))
    assert cc(one(sent, "award-congratulations", CLAIRE)) == {LEAD}
    assert status(bot, EASTER) == "awarded"

    # Monday 12 April, three months on (the spring holidays are over):
    # the report reaches Ruth, Isla and staff, with the share awarded and
    # a forecast; Balcarres is named as stalled.
    sent = j.step("2027-04-12 10:00")
    for text in reports(sent, 3):
        assert "2 of 4 schools (50%)" in text
        assert "At the pace so far" in text
        assert "would be awarded around" in text
        assert "Nothing new has been heard for some time from" in text
        assert BALCARRES in text
    # Balcarres is nudged again (eight weeks of silence); Lochend, quiet
    # since its "not yet" on 3 March, is nudged for the first time.
    assert {a for m in kind(sent, "stall-nudge") for a in to(m)} == {
        DAVID, BRIAN}

    # May: Lochend has revised; its new results, then a new request,
    # reach Isla, who visits and awards it.
    sent = j.step("2027-05-10 10:00", from_school(
        f"Brian Kerr <{BRIAN}>", "Revised self-review",
        "Hello,\n\nWe have revised our self-review:\n" + LOCHEND_BETTER
        + "\nBrian\n"))
    assert "you may now apply" in body(one(sent, "results-receipt", BRIAN))
    sent = j.step("2027-05-11 10:00", from_school(
        f"Brian Kerr <{BRIAN}>", "A second visit",
        "Hello,\n\nWe would like to apply for a validation visit again.\n\n"
        "Brian\n"))
    assert kinds(sent) == ["acknowledgment", "visit-request"]
    second = one(sent, "visit-request", ISLA)
    assert f"{CURRICULUM}: 84%" in body(second)
    assert status(bot, LOCHEND) == "visit_requested"
    sent = j.step("2027-05-12 09:00", reply(
        second, ISLA, "Thursday 3 June at 10am.\n"))
    assert "Thursday 3 June 2027 at 10:00" in body(
        one(sent, "visit-date", BRIAN))
    sent = j.step("2027-06-04 15:00", reply(
        second, ISLA, "Digital School status awarded. Every class codes "
        "now.\n"))
    assert "Every class codes now." in body(
        one(sent, "award-congratulations", BRIAN))
    assert status(bot, LOCHEND) == "awarded"

    # Six months falls in the summer holidays: the report waits for the
    # first working day after them, and goes once.
    sent = j.step("2027-07-12 10:00")
    assert kind(sent, "progress-report") == []
    sent = j.step("2027-08-17 10:00")
    for text in reports(sent, 6):
        assert "3 of 4 schools (75%)" in text
        assert "would be awarded around" in text
    sent = j.step("2027-08-17 14:00")
    assert kind(sent, "progress-report") == []

    # Nine months: 12 October is in the October week; Monday 25th, then.
    sent = j.step("2027-10-12 10:00")
    assert kind(sent, "progress-report") == []
    sent = j.step("2027-10-25 10:00")
    for text in reports(sent, 9):
        assert "3 of 4 schools (75%)" in text
        assert "Forecast:" in text and BALCARRES in text

    # Balcarres asks where it stands, and gets its own checklist.
    sent = j.step("2027-10-26 10:00", from_school(
        f"David Swan <{DAVID}>", "Quick question",
        "Hello,\n\nWhere do we stand with the award, and what do we still "
        "need to do?\n\nDavid\n"))
    assert kinds(sent) == ["where-we-stand"]
    answer = one(sent, "where-we-stand", DAVID)
    assert f"Where {BALCARRES} stands" in str(answer["Subject"])
    text = body(answer)
    assert "[done] Invited to the programme" in text
    assert "[done] Self-review complete on" in text
    # The goal (12 October) has passed: the checklist says so.
    assert ("The goal was that every school would be a Digital School by "
            "Tuesday 12 October 2027") in text
    assert ("[to do] Digital School status, still to be reached: the "
            "nine-month goal was Tuesday 12 October 2027") in text
    assert "Your validator is Isla Fraser" in text
    assert "Self-review results: not yet received" in text
    assert ("[to do] Ask for a validation visit when you are ready; send "
            "your self-review results with it") in text
    for other in (CARNBEE, LOCHEND, EASTER):
        assert other not in str(answer["Subject"])
    # Its mentors, as Isla accepted them in January: Balcarres sent no
    # results, so it has a gap in every criterion.
    assert "Mentors and supports, as the validator agreed them:" in text
    mentored = [r for r in csv_rows(proposal)
                if r["mentee_school"] == BALCARRES and r["support"] == "mentor"]
    assert mentored
    for row in mentored:
        assert (f"{row['mentor_school']} mentors {BALCARRES} in "
                f"{row['criterion']}") in text

    _assert_the_record(bot)


def _assert_the_record(bot: Harness) -> None:
    """The export shows every school's whole story, in order."""
    exported = bot.export()
    [cluster] = exported["clusters"]
    assert cluster["name"] == CLUSTER
    assert cluster["validator"] == {"name": "Isla Fraser", "email": ISLA}
    statuses = {s["name"]: s["status"] for s in cluster["schools"]}
    assert statuses == {CARNBEE: "awarded", LOCHEND: "awarded",
                        EASTER: "awarded", BALCARRES: "self_review_complete"}
    _assert_the_cluster_story(cluster)
    history: dict[str, list[str]] = {}
    for school in cluster["schools"]:
        events = school["history"]
        assert [e["at"] for e in events] == sorted(e["at"] for e in events)
        history[school["name"]] = [e["event"] for e in events]
    for name, events in history.items():
        assert events[0] == "recorded", name
        assert "invitation sent" in events, name
        assert "support-plan" in events, name
    carnbee = history[CARNBEE]
    for event in ("self-review-complete", "self-review-results",
                  "visit-requested", "visit-date", "visit-outcome",
                  "award-congratulations sent"):
        assert event in carnbee, event
    lochend = history[LOCHEND]
    assert "comment" in lochend and "reminder" in lochend
    assert lochend.count("visit-requested") == 2
    assert lochend.count("visit-outcome") == 2
    assert lochend.count("self-review-results") == 2
    assert "visit-not-yet-outcome sent" in lochend
    easter = history[EASTER]
    assert easter.count("visit-not-yet") == 1
    assert easter.count("self-review-results") == 2
    assert "visit-outcome" in easter
    balcarres = history[BALCARRES]
    assert "command" in balcarres           # staff set its status
    # One nudge for each 28-day period of silence in which the clock
    # stopped: 22 Feb, 12 Apr, 10 May, 4 Jun, 17 Aug and 25 Oct.
    assert balcarres.count("stall-nudge") == 6
    assert balcarres.count("stall-nudge sent") == 6
    assert balcarres[-2:] == ["where-we-stand", "where-we-stand sent"]
    assert "visit-requested" not in balcarres
    # Nothing was sent twice, and nothing is left set aside.
    ids = [m["Message-ID"] for m in bot.sent()]
    assert len(ids) == len(set(ids))
    assert exported["set_aside"] == []



def _assert_the_cluster_story(cluster: dict[str, Any]) -> None:
    """The export shows the cluster's own story too: its start and goal,
    its validator, the matrix Isla accepted, and what was sent about the
    whole cluster."""
    assert cluster["created_at"] == "2027-01-12T09:35:00+00:00"
    assert cluster["activated_at"] == "2027-01-12T10:00:00+00:00"
    assert cluster["started_at"] == "2027-01-12T10:00:00+00:00"
    assert cluster["goal_by"] == "2027-10-12"
    assert cluster["validator_assigned_at"] == "2027-01-21T10:00:00+00:00"
    assert cluster["progress_reports"] == [3, 6, 9]
    matrix = cluster["support_proposal"]
    assert matrix["status"] == "accepted"
    assert matrix["proposed_at"] == "2027-01-21T10:00:00+00:00"
    assert matrix["accepted_at"] == "2027-01-22T10:00:00+00:00"
    assert matrix["accepted_by"] == "validator"
    names = {s["name"] for s in cluster["schools"]}
    assert matrix["ties"]
    for tie in matrix["ties"]:
        assert {tie["mentor_school"], tie["mentee_school"]} <= names
        assert tie["mentor_school"] != tie["mentee_school"]
        assert isinstance(tie["mentor_id"], int)
        assert isinstance(tie["mentee_id"], int)
    [easter] = [t for t in matrix["ties"] if t["mentee_school"] == EASTER
                and t["criterion"] == CURRICULUM]
    assert easter["mentor_school"] in (CARNBEE, LOCHEND)
    assert matrix["unknown"] == [{"school_id": 4, "school": BALCARRES}]

    events = cluster["history"]
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    story = [e["event"] for e in events]
    assert story[:2] == ["nominated", "missing-information sent"]
    for event in ("activated", "acknowledgment sent", "welcome sent",
                  "validator-assigned", "validator-assignment sent",
                  "support-proposed", "support-proposal sent",
                  "support-accepted", "command"):
        assert event in story, event
    assert story.count("council-notice sent") == 2
    assert story.index("activated") < story.index("validator-assigned") \
        < story.index("support-proposed") < story.index("support-accepted")
    assert [e["detail"] for e in events if e["event"] == "progress-report"
            ] == ["3 months", "6 months", "9 months"]
    assert story.count("progress-report sent") == 9    # lead, Isla, staff
    assert story.count("stall-notice sent") == story.count("stall-notice")
    assert story.count("stall-notice") == 6
    # Mail about one school is in that school's history, not here.
    assert "invitation sent" not in story
    assert "support-plan sent" not in story


# -- bugs found on the way ----------------------------------------------------
# Each test below guards a bug the journey above found, now fixed.

def csv_name(message: EmailMessage) -> str | None:
    return next(p.get_filename() for p in message.iter_attachments())


def test_a_validator_assigned_by_command_gets_the_matrix(bot: Harness) -> None:
    j = Journey(bot)
    nominated_and_invited(j)
    old_proposal = validator_and_matrix(j)
    # Staff give the cluster to Catriona Sinclair instead, by command.
    sent = j.step("2027-01-21 11:00", staff_command(
        f"assign validator Catriona Sinclair to {CLUSTER}\n"))
    answer = body(one(sent, "command-reply", STAFF))
    assert ("Catriona Sinclair is Carnbee Cluster's validator, in place of "
            "Isla Fraser") in answer
    assert f"Validator assignment: {CLUSTER}" in str(
        one(sent, "validator-assignment", CATRIONA)["Subject"])
    assert "Catriona Sinclair" in str(
        one(sent, "validator-assignment", LEAD)["Subject"])
    assert bot.cluster("Carnbee")["validator"]["email"] == CATRIONA
    # Guards a bug: the matrix stayed with the validator replaced. The new
    # validator gets the proposal waiting for an answer, table and CSV.
    proposal = one(sent, "support-proposal", CATRIONA)
    assert [p.get_filename() for p in proposal.iter_attachments()] == [
        csv_name(old_proposal)]
    # Isla, no longer its validator, cannot accept the matrix she was sent.
    later = j.step("2027-01-21 12:00", reply(old_proposal, ISLA, "Agreed.\n"))
    assert kind(later, "support-plan") == []
    assert "not from the cluster's validator" in bot.export()["set_aside"][0][
        "reason"]
    sent = j.step("2027-01-22 10:00", reply(proposal, CATRIONA, "Agreed.\n"))
    assert kinds(sent) == ["support-plan"] * 4


def test_the_checklist_names_the_schools_mentors(bot: Harness) -> None:
    j = Journey(bot)
    nominated_and_invited(j)
    proposal = validator_and_matrix(j)
    rows = csv_rows(proposal)
    mentor = next(r["mentor_school"] for r in rows
                  if r["mentee_school"] == EASTER
                  and r["criterion"] == CURRICULUM)
    ties = [r for r in rows if r["support"] == "mentor"]
    others = [r for r in rows if r["support"] != "mentor"]

    # Before Isla accepts, Easter Muir's checklist shows the proposal as
    # such.
    sent = j.step("2027-01-21 14:00", from_school(
        f"Claire Dunn <{CLAIRE}>", "A question",
        "Hello,\n\nWhere do we stand, and what do we still need to do?\n"))
    answer = body(one(sent, "where-we-stand", CLAIRE))
    assert ("Mentors and supports (proposed, awaiting the validator):"
            in answer)
    assert f"{mentor} mentors {EASTER} in {CURRICULUM}" in answer

    assert matrix_accepted(j, proposal) == mentor
    sent = j.step("2027-01-26 10:00", from_school(
        f"Claire Dunn <{CLAIRE}>", "Another question",
        "Hello,\n\nWhere do we stand, and what do we still need to do?\n"))
    answer = body(one(sent, "where-we-stand", CLAIRE))
    assert "Your validator is Isla Fraser" in answer
    # README: the school's checklist names its "validator and mentors":
    # who mentors it, in what, and whom it mentors, by name.
    assert "Mentors and supports, as the validator agreed them:" in answer
    assert "awaiting the validator" not in answer
    assert f"{mentor} mentors {EASTER} in {CURRICULUM}" in answer
    for row in ties:
        line = (f"{row['mentor_school']} mentors {row['mentee_school']} in "
                f"{row['criterion']}")
        assert (line in answer) == (EASTER in (row["mentor_school"],
                                               row["mentee_school"])), line
    for row in others:
        said = f"{row['mentee_school']} is supported in {row['criterion']} by"
        assert (said in answer) == (row["mentee_school"] == EASTER), said

    # Ruth, the lead, gets the whole cluster's ties.
    sent = j.step("2027-01-26 11:00", from_school(
        f"Ruth Paterson <{LEAD}>", "Progress",
        "Hello,\n\nWhere do we stand as a cluster?\n\nRuth\n"))
    answer = body(one(sent, "where-we-stand", LEAD))
    assert "Mentors and supports, as the validator agreed them:" in answer
    for row in ties:
        assert (f"{row['mentor_school']} mentors {row['mentee_school']} in "
                f"{row['criterion']}") in answer
    for row in others:
        assert (f"{row['mentee_school']} is supported in {row['criterion']} "
                "by") in answer


def test_a_new_visit_after_not_yet_is_not_a_change_of_date(
        bot: Harness) -> None:
    j = Journey(bot)
    nominated_and_invited(j)
    matrix_accepted(j, validator_and_matrix(j))
    sent = j.step("2027-02-03 10:00", from_school(
        BRIAN, "Visit", "We would like to apply for a validation visit.\n"))
    first = one(sent, "visit-request", ISLA)
    j.step("2027-02-04 09:00", reply(first, ISLA, "Tuesday 2 March at 2pm.\n"))
    j.step("2027-03-03 15:00", reply(first, ISLA, "Not yet. More coding.\n"))
    sent = j.step("2027-05-11 10:00", from_school(
        BRIAN, "A second visit", "We would like to apply for a validation "
        "visit again. Our new results:\n" + LOCHEND_BETTER))
    second = one(sent, "visit-request", ISLA)
    sent = j.step("2027-05-12 09:00", reply(second, ISLA,
                                            "Thursday 3 June at 10am.\n"))
    told = one(sent, "visit-date", BRIAN)
    assert "Thursday 3 June 2027 at 10:00" in body(told)
    # Guards a bug: a second visit, asked for after a "not yet", was
    # announced as the first one moved ("has changed", "was 2 March").
    assert str(told["Subject"]).startswith("Your validation visit")
    assert "changed" not in body(told)
    history = [e["detail"] for e in bot.export()["clusters"][0]["schools"][1][
        "history"] if e["event"] == "visit-date"]
    assert history[-1] == "Thursday 3 June 2027 at 10:00"
    # Moving the second visit is a change, and is said to be one.
    sent = j.step("2027-05-13 09:00", reply(second, ISLA,
                                            "Friday 4 June at 10am.\n"))
    moved = one(sent, "visit-date", BRIAN)
    assert str(moved["Subject"]).startswith("New date")


def test_the_lead_is_acknowledged_in_their_own_thread(bot: Harness) -> None:
    j = Journey(bot)
    sent = j.step("2027-01-12 09:35", from_school(
        f"Ruth Paterson <{LEAD}>", f"Nomination: {CLUSTER}", NOMINATION))
    nomination_id = str(one(sent, "missing-information", LEAD)["In-Reply-To"])
    sent = j.step("2027-01-12 10:00", staff_command(
        f"set council of {CLUSTER} to Fife\nconfirm nomination {CLUSTER}\n"))
    command_id = str(one(sent, "command-reply", STAFF)["In-Reply-To"])
    acknowledgment = one(sent, "acknowledgment", LEAD)
    # The acknowledgment answers Ruth's nomination, not the staff
    # member's command, which she never saw.
    assert str(acknowledgment["In-Reply-To"]) == nomination_id
    assert str(acknowledgment["References"]).split() == [nomination_id]
    assert command_id != nomination_id
    assert command_id not in str(acknowledgment["References"])


def test_the_lead_is_acknowledged_under_their_latest_reply(
        bot: Harness) -> None:
    """Ruth answers the request for details, leaving the council out
    again; staff confirm: the acknowledgment answers her reply."""
    j = Journey(bot)
    sent = j.step("2027-01-12 09:35", from_school(
        f"Ruth Paterson <{LEAD}>", f"Nomination: {CLUSTER}", NOMINATION))
    asked = one(sent, "missing-information", LEAD)
    nomination_id = str(asked["In-Reply-To"])
    answer = reply(asked, f"Ruth Paterson <{LEAD}>",
                   "Hello,\n\nWe forgot a school:\n\nSchools:\n"
                   "5. Pitscottie Primary School (primary) - Jane Reid - "
                   "j.reid@pitscottie-ps.fife.example.sch.uk\n\nRuth\n")
    sent = j.step("2027-01-12 09:50", answer)
    assert bot.cluster("Carnbee")["status"] == "incomplete"
    answer_id = str(one(sent, "missing-information", LEAD)["In-Reply-To"])
    assert answer_id != nomination_id
    sent = j.step("2027-01-12 10:00", staff_command(
        f"set council of {CLUSTER} to Fife\nconfirm nomination {CLUSTER}\n"))
    assert "confirmed with 5 schools" in body(one(sent, "command-reply",
                                                  STAFF))
    acknowledgment = one(sent, "acknowledgment", LEAD)
    assert str(acknowledgment["In-Reply-To"]) == answer_id
    assert str(acknowledgment["References"]).split() == [nomination_id,
                                                          answer_id]


def test_reports_name_the_criteria_as_people_do(bot: Harness) -> None:
    j = Journey(bot)
    nominated_and_invited(j)
    validator_and_matrix(j)
    sent = j.step("2027-04-12 10:00")
    # Every mail "reads like a careful person wrote it" (MISSION.md): the
    # criteria by their names, never the record's keys.
    lochend = ("Lochend Primary School: self-review complete; results: "
               f"Leadership & Vision 74%, {CURRICULUM} 71%, School Culture "
               "80%, Professional Development 70%, Resources & "
               "Infrastructure 76%")
    carnbee = ("Carnbee Primary School: self-review complete; results: "
               f"Leadership & Vision 85%, {CURRICULUM} 78%, School Culture "
               "90%, Professional Development 72%, Resources & "
               "Infrastructure 80%")
    easter = (f"Easter Muir Primary School: self-review complete; results: "
              f"Leadership & Vision 75%, {CURRICULUM} 50%, School Culture "
              "83.3%, Professional Development 50%, Resources & "
              "Infrastructure 80% (estimated from the counts of statements)")
    texts = [body(m) for m in kind(sent, "progress-report")]
    texts += [body(one(sent, "progress-digest", ISLA))]    # weekly digest
    assert len(texts) == 4
    for text in texts:
        assert lochend in text
        assert carnbee in text
        assert easter in text
        for key in ("professional_development", "leadership ", "culture ",
                    "resources ", "curriculum "):
            assert key not in text, key
    # The monthly summaries for Fife and Education Scotland, on Tuesday 4
    # May (the first working day of May: the 3rd is a bank holiday).
    sent = j.step("2027-05-04 10:00")
    for who in (FIFE, ES):
        text = body(one(sent, "progress-digest", who))
        assert lochend in text and easter in text
        assert "professional_development" not in text
    # And Lochend's own checklist.
    sent = j.step("2027-05-05 10:00", from_school(
        f"Brian Kerr <{BRIAN}>", "Question",
        "Hello,\n\nWhere do we stand, and what do we still need to do?\n"))
    text = body(one(sent, "where-we-stand", BRIAN))
    assert ("[done] Self-review results received on Wednesday 20 January "
            f"2027 (Leadership & Vision 74%, {CURRICULUM} 71%") in text
    assert "professional_development" not in text
