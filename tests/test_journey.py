"""The whole cluster journey, end to end, moving the clock instead of
sleeping: once on the embedded default (Maildir and file outbox), once
through a real Dovecot IMAP server and a real SMTP server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import (
    Harness,
    body,
    completion_mail,
    example_config,
    sample,
)

MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"
ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"
FIONA = "headteacher@kirkton-ps.fife.example.sch.uk"
DECLAN = "d.oneill@stserfs.fife.example.sch.uk"
ISLA = "isla.fraser@dsa.example.org"
STAFF = "coordinator@dsa.example.org"


@pytest.fixture(params=["maildir", "imap"])
def bot(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "maildir":
        harness = Harness(example_config(tmp_path), "2027-01-12 09:35")
    else:
        dovecot = request.getfixturevalue("dovecot")
        smtp = request.getfixturevalue("smtp_server")
        config = example_config(tmp_path, mailbox=dovecot.mailbox_config(),
                                sending=smtp.login_config())
        smtp.require_auth()

        def received() -> list[EmailMessage]:
            return [email.message_from_bytes(  # type: ignore[misc]
                r.content, policy=email.policy.default) for r in smtp.received]

        harness = Harness(config, "2027-01-12 09:35",
                          deliver=dovecot.deliver, sent=received)
        harness.dovecot = dovecot  # type: ignore[attr-defined]
    yield harness
    harness.close()


def kinds(messages: list[EmailMessage]) -> list[str]:
    return sorted(str(m["X-Mailbot-Kind"]) for m in messages)


def test_the_whole_journey(bot: Harness) -> None:
    # Tuesday 12 January: the nomination, with robots close behind.
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert kinds(bot.sent(to=MORAG)) == [
        "acknowledgment", "invitation", "welcome"]
    assert len(bot.sent("invitation")) == 5
    assert len(bot.sent("council-notice")) == 2
    assert len(bot.sent("digest", STAFF)) == 1
    balgonie = bot.sent("invitation", "e.hart@balgonie-ps.fife.example.sch.uk")
    assert "need not" in body(balgonie[0]) or "not need" in body(balgonie[0])

    bot.at("2027-01-12 09:45")
    bot.deliver(sample("06-out-of-office"), sample("07-bounce"),
                sample("09-newsletter"))
    sent_before = len(bot.sent())
    bot.cycle()
    assert len(bot.sent()) == sent_before
    assert bot.school("Balgonie Primary School")["undeliverable"] is True
    assert [m["from"] for m in bot.export()["set_aside"]] == [
        "news@edtech-weekly.example.com"]

    # Thursday: a comment. Monday: Kirkton has finished.
    bot.at("2027-01-14 15:00")
    bot.deliver(sample("04-comment-reply"))
    bot.cycle()
    assert len(bot.sent("comment-receipt", ALAN)) == 1
    bot.at("2027-01-18 11:00")
    bot.deliver(sample("05-self-review-complete"))
    bot.cycle()
    assert len(bot.sent("completion-receipt", FIONA)) == 1

    # A week after the invitations, on a working day: first reminders to
    # the three schools still at work; none to Kirkton or Balgonie.
    bot.at("2027-01-19 10:00")
    bot.cycle()
    reminded = {a for m in bot.sent("reminder") for a in _to(m)}
    assert reminded == {MORAG, ALAN, DECLAN}

    # Sunday 24 January is two days before the deadline: nothing on a
    # Sunday; the reminder waits for Monday morning.
    bot.at("2027-01-24 12:00")
    sent_before = len(bot.sent())
    bot.cycle()
    assert len(bot.sent()) == sent_before
    bot.at("2027-01-25 09:00")
    bot.cycle()
    assert len(bot.sent("reminder")) == 6

    # The day after the deadline: overdue, with the lead copied (except
    # where the lead is the school's own contact).
    bot.at("2027-01-27 09:00")
    bot.cycle()
    overdue = bot.sent("reminder")[6:]
    assert len(overdue) == 3
    to_alan = next(m for m in overdue if ALAN in _to(m))
    assert MORAG in str(to_alan["Cc"])
    assert bot.export()["clusters"][0]["validator"] is None

    # The last three finish; the validator is chosen and told, once.
    bot.at("2027-01-27 11:00")
    head = "Kind regards\nThe head teacher"
    bot.deliver(
        completion_mail(f"Morag Lindsay <{MORAG}>", "Glenbrae High School", head),
        completion_mail(f"Alan Reid <{ALAN}>", "Glenbrae Primary School", head),
        completion_mail(f"Declan O'Neill <{DECLAN}>", "St Serf's", head))
    bot.cycle()
    cluster = bot.cluster("Glenbrae")
    # Graeme Munro is excluded from Fife; Isla and Catriona have no open
    # clusters, and Isla is listed first.
    assert cluster["validator"] == {"name": "Isla Fraser", "email": ISLA}
    assert cluster["status"] == "validator_assigned"
    assignment = bot.sent("validator-assignment", ISLA)
    assert len(assignment) == 1
    assert "dates from 2019" in body(assignment[0])  # Alan's comment
    assert len(bot.sent("validator-assignment", MORAG)) == 1

    bot.at("2027-01-28 08:00")
    bot.cycle()
    digests = bot.sent("digest", STAFF)
    # One each working day the bot ran after 07:30: 12, 14, 18, 19, 25,
    # 27 and 28 January; none on Sunday the 24th.
    assert len(digests) == 7
    assert "Isla Fraser" in body(digests[-1])

    # March: a visit request goes to the cluster's validator.
    bot.at("2027-03-23 10:00")
    bot.deliver(sample("08-visit-request"))
    bot.cycle()
    assert bot.school("Glenbrae Primary School")["status"] == "visit_requested"
    assert len(bot.sent("visit-request", ISLA)) == 1

    # Nothing was sent twice, and every school's history tells its story.
    ids = [m["Message-ID"] for m in bot.sent()]
    assert len(ids) == len(set(ids))
    _assert_history(bot)
    if hasattr(bot, "dovecot"):
        _assert_folders(bot.dovecot)


def _to(message: EmailMessage) -> set[str]:
    return {a.addr_spec.lower() for a in message["To"].addresses}


def _assert_history(bot: Harness) -> None:
    store = bot.bot.store
    alan = next(s for s in store.all_schools()
                if s["name"] == "Glenbrae Primary School")
    events = [e["event"] for e in store.history_of_school(alan.doc_id)]
    assert events[0] == "recorded"
    assert "comment" in events and "self-review-complete" in events
    assert events.count("reminder") == 3
    assert events[-1] == "visit-requested"
    assert all(e["at"] for e in store.history_of_school(alan.doc_id))
    comment = next(e for e in store.history_of_school(alan.doc_id)
                   if e["event"] == "comment")
    assert comment["message_id"].startswith("<179639671474.11793.342066")

    exported = bot.school("Glenbrae Primary School")["history"]
    assert [e["at"] for e in exported] == sorted(e["at"] for e in exported)
    assert "invitation sent" in [e["event"] for e in exported]
    assert "comment-receipt sent" in [e["event"] for e in exported]


def _assert_folders(dovecot: Any) -> None:
    assert dovecot.folder_messages("INBOX") == []
    assert len(dovecot.folder_messages("Handled")) == 9
    aside = dovecot.folder_messages("Set aside")
    assert len(aside) == 1 and b"EdTech Weekly" in aside[0]
