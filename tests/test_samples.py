"""Every sample in mailbot/demo_mail gives the outcome its README states,
on the embedded default (Maildir in, file outbox out)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Harness, body, example_config, sample

FIFE = "digital.learning@fife.example.gov.uk"
ES = "digital.schools@educationscotland.example.gov.uk"
STAFF = "coordinator@dsa.example.org"
MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"
ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 12:00")
    harness.deliver(*(sample(n) for n in (
        "01-nomination-list", "02-nomination-csv",
        "03-nomination-outlook-html", "06-out-of-office", "07-bounce",
        "09-newsletter", "10-nomination-incomplete")))
    harness.cycle()
    yield harness
    harness.close()


def test_01_nomination_list_records_the_cluster(bot: Harness) -> None:
    glenbrae = bot.cluster("Glenbrae")
    assert glenbrae["name"] == "Glenbrae Cluster"
    assert glenbrae["local_authority"] == "Fife"
    assert glenbrae["lead_contact"] == {"name": "Morag Lindsay", "email": MORAG}
    assert [s["name"] for s in glenbrae["schools"]] == [
        "Glenbrae High School", "Glenbrae Primary School",
        "Kirkton Primary School", "St Serf's RC Primary School",
        "Balgonie Primary School"]
    assert bot.school("Glenbrae High School")["phase"] == "secondary"
    assert bot.school("Balgonie Primary School")["status"] == "already_awarded"
    assert bot.school("Kirkton Primary School")["status"] == "invited"


def test_01_nomination_list_sends_the_right_mail(bot: Harness) -> None:
    ack = bot.sent("acknowledgment", MORAG)
    assert len(ack) == 1
    assert str(ack[0]["In-Reply-To"]).strip() == (
        "<179639671474.11793.12941860208802470180"
        "@glenbrae-hs.fife.example.sch.uk>")
    assert "Balgonie Primary School" in body(ack[0])
    assert len(bot.sent("welcome", MORAG)) == 1
    assert len(bot.sent("council-notice", FIFE)) == 1
    assert len(bot.sent("council-notice", ES)) == 3  # one per complete cluster
    invitations = bot.sent("invitation", ALAN)
    assert len(invitations) == 1
    assert "Acceptable Usage Policy" in body(invitations[0])
    high = bot.sent("invitation", MORAG)
    assert len(high) == 1 and "checklist" in body(high[0])


def test_01_already_awarded_school_is_asked_for_nothing(bot: Harness) -> None:
    # The bounce sample (07) arrived in the same batch and names Balgonie's
    # address, so its invitation is held back rather than sent into a bounce.
    assert bot.school("Balgonie Primary School")["undeliverable"] is True
    queued = bot.bot.store.outgoing_by_key(
        f"invitation:{_school_id(bot, 'Balgonie Primary School')}")
    assert queued is not None
    assert queued["status"] == "suppressed"
    assert "need not" in queued["raw"] or "not need" in queued["raw"]


def test_02_csv_attachment(bot: Harness) -> None:
    inverbrora = bot.cluster("Inverbrora")
    assert inverbrora["local_authority"] == "Highland"
    assert inverbrora["lead_contact"]["name"] == "Kenneth MacRae"
    names = [s["name"] for s in inverbrora["schools"]]
    assert len(names) == 4
    assert "Bun-sgoil Ghàidhlig Inbhir Bhrùra" in names
    gaelic = bot.school("Bun-sgoil Ghàidhlig Inbhir Bhrùra")
    assert gaelic["contact_name"] == "Catrìona NicLeòid"
    assert gaelic["phase"] == "primary"


def test_03_outlook_html_tables(bot: Harness) -> None:
    carronvale = bot.cluster("Carronvale")
    assert carronvale["name"] == "Carronvale Learning Community"
    assert carronvale["local_authority"] == "Falkirk"
    assert [s["name"] for s in carronvale["schools"]] == [
        "Carronvale High School", "Carronvale Primary School",
        "Westquarter Primary School"]


def test_06_out_of_office_is_not_answered(bot: Harness) -> None:
    to_declan = bot.sent(to="d.oneill@stserfs.fife.example.sch.uk")
    assert [str(m["X-Mailbot-Kind"]) for m in to_declan] == ["invitation"]
    assert not any("stserfs" in (m["from"] or "")
                   for m in bot.export()["set_aside"])


def test_07_bounce_marks_the_address_and_tells_staff(bot: Harness) -> None:
    assert not bot.sent(to="mailer-daemon@mx.dsa.example.org")
    digest = bot.sent("digest", STAFF)
    assert len(digest) == 1
    assert "e.hart@balgonie-ps.fife.example.sch.uk" in body(digest[0])


def test_09_newsletter_is_set_aside_unanswered(bot: Harness) -> None:
    assert not bot.sent(to="news@edtech-weekly.example.com")
    aside = bot.export()["set_aside"]
    assert [m["from"] for m in aside] == ["news@edtech-weekly.example.com"]
    assert "bulk" in aside[0]["reason"] or "list" in aside[0]["reason"].lower()


def test_10_incomplete_nomination_asks_for_what_is_missing(bot: Harness) -> None:
    assert not bot.sent("invitation", "mrs.kaur@hillhead-ps.example.sch.uk")
    asked = bot.sent("missing-information", "gfleming@burnside-ps.example.sch.uk")
    assert len(asked) == 1
    text = body(asked[0])
    assert "local authority" in text.lower()
    assert "Hillhead Primary" in text
    incomplete = [c for c in bot.export()["clusters"] if c["status"] == "incomplete"]
    assert len(incomplete) == 1 and incomplete[0]["schools"] == []


def test_every_message_sent_says_it_is_automatic(bot: Harness) -> None:
    sent = bot.sent()
    assert len(sent) > 10
    for message in sent:
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["X-Auto-Response-Suppress"] == "All"
        assert message["X-Mailbot-Kind"]
        assert message["Message-ID"] and message["Date"]
        assert message.get_body(preferencelist=("html",)) is not None


def test_04_comment_is_stored_without_quote_or_signature(bot: Harness) -> None:
    bot.at("2027-01-14 15:00")
    bot.deliver(sample("04-comment-reply"))
    bot.cycle()
    comments = bot.school("Glenbrae Primary School")["comments"]
    assert len(comments) == 1
    text = comments[0]["text"]
    assert "dates from 2019" in text
    assert "Sent: 12 January" not in text
    assert "Head Teacher" not in text
    assert len(bot.sent("comment-receipt", ALAN)) == 1


def test_05_completion_then_08_visit_request(bot: Harness) -> None:
    bot.at("2027-01-18 11:00")
    bot.deliver(sample("05-self-review-complete"))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "self_review_complete"
    assert len(bot.sent("completion-receipt",
                        "headteacher@kirkton-ps.fife.example.sch.uk")) == 1

    bot.at("2027-03-23 10:00")
    bot.deliver(sample("08-visit-request"))
    bot.cycle()
    assert bot.school("Glenbrae Primary School")["status"] == "visit_requested"
    # No validator yet (St Serf's has not finished), so staff are told.
    assert len(bot.sent("visit-request", STAFF)) == 1
    assert len(bot.sent("acknowledgment", ALAN)) == 1


def test_the_same_mail_again_changes_nothing(bot: Harness) -> None:
    before = len(bot.sent())
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert len(bot.export()["clusters"]) == 4
    assert len(bot.sent()) == before


def _school_id(bot: Harness, name: str) -> int:
    return next(s.doc_id for s in bot.bot.store.all_schools() if s["name"] == name)
