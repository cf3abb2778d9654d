"""The matrix of supports by email, end to end (supports.py): proposed to
the validator when a cluster gets one, accepted or changed by the
validator's reply, then sent to each school."""

from __future__ import annotations

import csv
import email.utils
import io
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import Harness, body, example_config, make_mail, sample

from mailbot.supports import CSV_COLUMNS

MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"
ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"
FIONA = "headteacher@kirkton-ps.fife.example.sch.uk"
DECLAN = "d.oneill@stserfs.fife.example.sch.uk"
EWAN = "e.hart@balgonie-ps.fife.example.sch.uk"
ISLA = "isla.fraser@dsa.example.org"
SCHOOLS = {MORAG: "Glenbrae High School", ALAN: "Glenbrae Primary School",
           FIONA: "Kirkton Primary School", DECLAN: "St Serf's RC Primary School",
           EWAN: "Balgonie Primary School"}
CRITERIA = ("Leadership & Vision",
            "Use of Digital Technology to Deliver the Curriculum",
            "School Culture", "Professional Development",
            "Resources & Infrastructure")
SCORES = {FIONA: (82, 55, 90, 40, 75),
          MORAG: (50, 85, 60, 80, 45),
          ALAN: (60, 40, 30, 75, 80)}  # St Serf's sends none


def completion(sender: str) -> bytes:
    scores = "".join(f"{c}: {p}%\n" for c, p in
                     zip(CRITERIA, SCORES.get(sender, ()), strict=False))
    return make_mail(sender, f"{SCHOOLS[sender]} - self-review",
                     f"Hello,\n\nWe have now completed the self-review.\n\n"
                     f"{scores}\nKind regards\nThe head teacher\n")


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 09:35")
    harness.deliver(sample("01-nomination-list"))
    harness.cycle()
    harness.at("2027-01-18 11:00")
    harness.deliver(*(completion(a) for a in (FIONA, MORAG, ALAN, DECLAN)))
    harness.cycle()
    yield harness
    harness.close()


def proposal(bot: Harness, n: int = -1) -> EmailMessage:
    return bot.sent("support-proposal", ISLA)[n]


def csv_rows(message: EmailMessage) -> list[dict[str, str]]:
    files = list(message.iter_attachments())
    assert [f.get_filename() for f in files] == ["matrix-of-supports.csv"]
    assert files[0].get_content_type() == "text/csv"
    data = files[0].get_payload(decode=True)
    assert isinstance(data, bytes)
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


def reply(to: EmailMessage, sender: str, text: str,
          attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Digital Schools Programme <programme@dsa.example.org>"
    message["Subject"] = f"Re: {to['Subject']}"
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="dsa.example.org")
    message["In-Reply-To"] = str(to["Message-ID"])
    message["References"] = str(to["Message-ID"])
    message.set_content(text)
    if attachment is not None:
        message.add_attachment(attachment, maintype="text", subtype="csv",
                               filename="matrix-of-supports.csv")
    return message.as_bytes()


def record(bot: Harness) -> dict:  # type: ignore[type-arg]
    store = bot.bot.store
    cluster = store.all_clusters()[0]
    return dict(cluster["support_proposal"])


def ids(bot: Harness) -> dict[str, int]:
    return {s["name"]: s.doc_id for s in bot.bot.store.all_schools()}


def test_the_validator_gets_a_proposal_with_a_csv(bot: Harness) -> None:
    assert bot.cluster("Glenbrae")["validator"]["email"] == ISLA
    assert len(bot.sent("support-proposal", ISLA)) == 1
    message = proposal(bot)
    assert message.get_content_type() == "multipart/mixed"
    text = body(message)
    assert "Strengths and gaps" in text and "School matching" in text
    # St Serf's sent no results: counted as gaps, and the table says so.
    assert "no self-review results have reached us from St Serf's" in text
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "<table" in str(html.get_content())
    rows = csv_rows(message)
    school_ids = ids(bot)
    kept = record(bot)
    assert len(rows) == len(kept["ties"]) + len(kept["fallbacks"])
    for row in rows:
        assert row["criterion"] in CRITERIA
        assert school_ids[row["mentee_school"]] == int(row["mentee_id"])
        if row["support"] == "mentor":
            assert school_ids[row["mentor_school"]] == int(row["mentor_id"])
            line = (f"{row['mentor_school']} mentors {row['mentee_school']} "
                    f"in {row['criterion']}")
            assert line in text
    # Kirkton is strongest in School Culture; Glenbrae Primary is weakest.
    assert {"mentor_school": "Kirkton Primary School",
            "mentee_school": "Glenbrae Primary School",
            "criterion": "School Culture"}.items() <= next(
        r for r in rows if r["criterion"] == "School Culture"
        and r["mentee_school"] == "Glenbrae Primary School").items()
    assert kept["status"] == "proposed" and kept["version"] == 1


def test_accept_sends_each_school_its_plan(bot: Harness) -> None:
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(proposal(bot), f"Isla Fraser <{ISLA}>",
                      "Thank you, I accept this.\n\nIsla"))
    bot.cycle()
    assert record(bot)["status"] == "accepted"
    plans = bot.sent("support-plan")
    assert len(plans) == 5
    for address, name in SCHOOLS.items():
        mine = bot.sent("support-plan", address)
        to_school = [m for m in mine if address in str(m["To"])]
        assert len(to_school) == 1, name
        assert name in str(to_school[0]["Subject"])
        if address != MORAG:
            assert MORAG in str(to_school[0]["Cc"])
    alan = body(next(m for m in plans if ALAN in str(m["To"])))
    assert "Kirkton Primary School, in School Culture" in alan
    store = bot.bot.store
    for school in store.all_schools():
        events = [e["event"] for e in store.history_of_school(school.doc_id)]
        assert "support-plan" in events


def test_change_by_reply_text_then_accept(bot: Harness) -> None:
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(proposal(bot), ISLA,
                      "Two changes, please:\n\n"
                      "Glenbrae High School mentors St Serf's in "
                      "Use of Digital Technology to Deliver the Curriculum\n"
                      "Council supports Kirkton in Professional Development\n"))
    bot.cycle()
    kept = record(bot)
    assert kept["status"] == "proposed" and kept["version"] == 2
    school_ids = ids(bot)
    assert {"mentor": school_ids["Glenbrae High School"],
            "mentee": school_ids["St Serf's RC Primary School"],
            "criterion": CRITERIA[1], "in_cluster": True} in kept["ties"]
    assert {"school": school_ids["Kirkton Primary School"],
            "criterion": "Professional Development",
            "support": "council"} in kept["fallbacks"]
    assert not any(t["mentee"] == school_ids["Kirkton Primary School"]
                   and t["criterion"] == "Professional Development"
                   for t in kept["ties"])
    revised = proposal(bot)
    assert len(bot.sent("support-proposal", ISLA)) == 2
    assert str(revised["Subject"]).startswith("Revised matrix")
    assert "Glenbrae High School mentors St Serf's RC Primary School" \
        in body(revised)
    assert bot.sent("support-plan") == []

    bot.at("2027-01-19 11:00")
    bot.deliver(reply(revised, ISLA, "Agreed.\n"))
    bot.cycle()
    assert record(bot)["status"] == "accepted"
    declan = body(bot.sent("support-plan", DECLAN)[0])
    assert "Glenbrae High School, in Use of Digital Technology" in declan


def test_unknown_names_are_refused_with_the_problems(bot: Harness) -> None:
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(proposal(bot), ISLA,
                      "Nowhere Academy mentors Kirkton in School Culture\n"
                      "Kirkton mentors Glenbrae in Pottery\n"))
    bot.cycle()
    assert record(bot)["version"] == 1
    answer = bot.sent("support-proposal", ISLA)[-1]
    text = body(answer)
    assert "not changed" in str(answer["Subject"])
    assert "no school called 'Nowhere Academy'" in text
    assert "'Pottery' is not a criterion" in text
    assert "could be any of Glenbrae High School; Glenbrae Primary" in text


def test_change_by_edited_csv_and_accept(bot: Harness) -> None:
    message = proposal(bot)
    rows = csv_rows(message)
    school_ids = ids(bot)
    # The validator drops every tie but the first and gives every other
    # gap to Education Scotland.
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS)
    writer.writeheader()
    first = next(r for r in rows if r["support"] == "mentor")
    writer.writerow(first)
    for r in rows:
        if r is not first:
            writer.writerow({**r, "mentor_id": "", "mentor_school": "",
                             "support": "Education Scotland"})
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(message, ISLA, "My version attached. Approved.\n",
                      out.getvalue().encode()))
    bot.cycle()
    kept = record(bot)
    assert kept["status"] == "accepted" and kept["version"] == 2
    assert kept["ties"] == [{"mentor": int(first["mentor_id"]),
                             "mentee": int(first["mentee_id"]),
                             "criterion": first["criterion"],
                             "in_cluster": True}]
    assert {f["support"] for f in kept["fallbacks"]} == {"Education Scotland"}
    assert len(kept["fallbacks"]) == len(rows) - 1
    assert len(bot.sent("support-plan")) == 5
    mentee = next(n for n, i in school_ids.items()
                  if i == int(first["mentee_id"]))
    mentee_address = next(a for a, n in SCHOOLS.items() if n == mentee)
    plan = body(next(m for m in bot.sent("support-plan", mentee_address)
                     if mentee_address in str(m["To"])))
    assert f"{first['mentor_school']}, in {first['criterion']}" in plan


def test_a_bad_csv_is_refused(bot: Harness) -> None:
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(proposal(bot), ISLA, "Accept with my file.\n",
                      b"criterion,mentee_id,mentee_school,mentor_id,"
                      b"mentor_school,support\r\nSchool Culture,999,,,,"
                      b"validator\r\n"))
    bot.cycle()
    assert record(bot)["status"] == "proposed"
    assert "row 2: no school of the cluster has the id 999" in body(
        bot.sent("support-proposal", ISLA)[-1])
    assert bot.sent("support-plan") == []


@pytest.mark.parametrize("text", [
    "I won't accept this until we have spoken.",
    "I don\u2019t agree with this at all.",  # the apostrophe of Outlook
    "I'm unable to approve this as it stands.",
    "I wouldn't agree to this yet.",
    # Wrapped at 72 columns between its words.
    ("Having gone through it with the head teachers, I do not\naccept the "
     "matrix as it stands: we should talk first."),
])
def test_a_refusal_is_no_acceptance(bot: Harness, text: str) -> None:
    # Guards a bug: each of these was read as accepting the matrix, and
    # every school was sent a plan the validator had refused.
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(proposal(bot), f"Isla Fraser <{ISLA}>",
                      f"{text}\n\nIsla"))
    bot.cycle()
    assert record(bot)["status"] == "proposed"
    assert bot.sent("support-plan") == []


def test_accept_from_anyone_else_is_set_aside(bot: Harness) -> None:
    bot.at("2027-01-19 10:00")
    bot.deliver(reply(proposal(bot), f"Morag Lindsay <{MORAG}>",
                      "Accept.\n"))
    bot.cycle()
    assert record(bot)["status"] == "proposed"
    assert bot.sent("support-plan") == []
    aside = bot.export()["set_aside"]
    assert [a["from"] for a in aside] == [MORAG]
    assert "validator" in aside[0]["reason"]


def test_by_reference_alone_without_a_thread(bot: Harness) -> None:
    """A new mail (no thread) from the validator, with the reference that
    ends the proposal's subject, answers the proposal too."""
    subject = str(proposal(bot)["Subject"])
    bot.at("2027-01-19 10:00")
    bot.deliver(make_mail(ISLA, f"Matrix for Glenbrae {subject[-20:]}",
                          "Approved.\n"))
    bot.cycle()
    assert record(bot)["status"] == "accepted"
    assert len(bot.sent("support-plan")) == 5
