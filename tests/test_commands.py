"""Staff commands by email, end to end: a real mailbot on the embedded
default (Maildir in, file outbox), the clock moved by hand, and
Authentication-Results headers as a trusted receiving server writes them."""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, body, example_config, make_mail, sample

from mailbot import commands, digest, logsafe, mail
from mailbot.config import Config

STAFF = "coordinator@dsa.example.org"
MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"
FIONA = "headteacher@kirkton-ps.fife.example.sch.uk"
ISLA = "isla.fraser@dsa.example.org"
CATRIONA = "catriona.sinclair@dsa.example.org"
TRUSTED = "mx.dsa.example.org"
PASS = (f"{TRUSTED}; dkim=pass (2048-bit key) header.d=dsa.example.org "
        "header.i=@dsa.example.org header.s=mail; spf=pass "
        "smtp.mailfrom=dsa.example.org; dmarc=pass (p=reject dis=none) "
        "header.from=dsa.example.org")
FAIL = (f"{TRUSTED}; dkim=none (message not signed); spf=fail "
        "smtp.mailfrom=dsa.example.org; dmarc=fail (p=reject dis=none) "
        "header.from=dsa.example.org")


def trusting_config(tmp_path: Path) -> Config:
    """The example config, trusting TRUSTED's Authentication-Results."""
    config = example_config(tmp_path)
    return dataclasses.replace(config, security=dataclasses.replace(
        config.security, authserv_ids=(TRUSTED,)))


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(trusting_config(tmp_path), "2027-01-12 09:35")
    harness.deliver(sample("01-nomination-list"))
    harness.cycle()
    yield harness
    harness.close()


def on_top(raw: bytes, *fields: str) -> bytes:
    """The message as the receiving server hands it on: its own fields
    above the ones the message came with."""
    return b"".join(f"{f}\r\n".encode() for f in fields) + raw


def received(by: str = TRUSTED) -> str:
    return (f"Received: from mail.dsa.example.org (mail.dsa.example.org "
            f"[192.0.2.10]) by {by} with ESMTPS; Tue, 12 Jan 2027 10:00:00 +0000")


def command_mail(text: str, sender: str = STAFF, auth: str | None = PASS,
                 subject: str = "Commands", **headers: str) -> bytes:
    raw = make_mail(sender, subject, text, **headers)
    if auth is None:
        return on_top(raw, received())
    return on_top(raw, received(), f"Authentication-Results: {auth}")


def send(bot: Harness, raw: bytes, when: str = "2027-01-12 10:00") -> None:
    bot.at(when)
    bot.deliver(raw)
    bot.cycle()


def replies(bot: Harness) -> list[str]:
    return [body(m) for m in bot.sent("command-reply", STAFF)]


def record(bot: Harness) -> dict[str, Any]:
    """The export, without the history (which notes each refusal)."""
    data = bot.export()
    for cluster in data["clusters"]:
        for school in cluster["schools"]:
            school.pop("history")
    data.pop("set_aside")
    return data


def events(bot: Harness, kind: str) -> list[str]:
    return [e["detail"] for e in bot.bot.store.events.all()
            if e["event"] == kind]


def digest_text(bot: Harness) -> str:
    store = bot.bot.store
    context = digest.context(store, bot.clock.now(), None)
    return "\n".join(f"{s['title']}: " + " | ".join(s["items"])
                     for s in context["sections"])


# -- the grammar --------------------------------------------------------------

@pytest.mark.parametrize("line, name, args", [
    ("Award Kirkton", "award", {"school": "Kirkton"}),
    ("  award #3.", "award", {"school": "#3"}),
    ("SET STATUS OF Glenbrae Primary TO self-review complete", "status",
     {"school": "Glenbrae Primary", "status": "self-review complete"}),
    ("confirm nomination of Ardmore", "confirm", {"cluster": "Ardmore"}),
    ("assign validator Isla Fraser to Glenbrae Cluster", "assign",
     {"validator": "Isla Fraser", "cluster": "Glenbrae Cluster"}),
    ("change validator of Glenbrae to isla.fraser@dsa.example.org", "assign",
     {"cluster": "Glenbrae", "validator": "isla.fraser@dsa.example.org"}),
    ("replace contact of Kirkton with Jo Bell <jo@kirkton.example.org>",
     "contact", {"school": "Kirkton", "contact": "Jo Bell <jo@kirkton.example.org>"}),
    ("accept office@kirkton.example.org for Kirkton", "accept",
     {"address": "office@kirkton.example.org", "school": "Kirkton"}),
    ("resend invitation to St Serf's", "resend", {"school": "St Serf's"}),
    ("clear the bounces of <jo@kirkton.example.org>", "deliverable",
     {"address": "<jo@kirkton.example.org>"}),
    ("send file of Glenbrae Cluster", "file", {"cluster": "Glenbrae Cluster"}),
    ("send me the file for the cluster #1", "file", {"cluster": "#1"}),
    ("rename cluster #1 to Glenbrae Learning Community", "rename",
     {"cluster": "#1", "name": "Glenbrae Learning Community"}),
    ("set council of #1 to Fife", "council", {"cluster": "#1", "council": "Fife"}),
    # Courtesies around a command.
    ("Please award #1.", "award", {"school": "#1"}),
    ("Could you award Kirkton, please?", "award", {"school": "Kirkton"}),
    ("Kindly resend the invitation to Kirkton", "resend", {"school": "Kirkton"}),
    ("please, could you send me the file of #1", "file", {"cluster": "#1"}),
])
def test_grammar(line: str, name: str, args: dict[str, str]) -> None:
    command = commands.parse_line(line)
    assert command is not None and command.name == name
    assert command.args == args


@pytest.mark.parametrize("line", [
    "Hi,", "Thanks", "Could you see to it?", "Please see below.", "Please",
    "",
])
def test_not_commands(line: str) -> None:
    assert commands.parse_line(line) is None


def test_lines_that_look_like_failed_commands() -> None:
    text = ("Hello,\n\naward Kirkton\nawrd Glenbrae\nPlease award #1.\n"
            "acept jo@kirkton.example.org for Kirkton\nSee #12 below\n"
            "set the moon to cheese\nAware of the delay, and awarded already\n"
            "Let me know, and get back to me\nThanks\n")
    found = [(c.line, c.name, c.hint) for c in commands.command_lines(text)]
    assert found == [
        ("award Kirkton", "award", ""), ("awrd Glenbrae", "", "award"),
        ("Please award #1", "award", ""),
        ("acept jo@kirkton.example.org for Kirkton", "", "accept"),
        ("See #12 below", "", ""), ("set the moon to cheese", "", "")]
    # Without a real command, it is ordinary mail.
    assert commands.command_lines("awrd Glenbrae\nSee #12\n") == []


def test_quoted_text_and_signature_hold_no_commands() -> None:
    text = ("Hello,\n\nSee below.\n\n-- \nJo\naward Kirkton\n")
    assert commands.command_lines(text) == []
    text = ("Fine by me.\n\nOn Tue, 12 Jan 2027 at 10:00, Jo wrote:\n"
            "> award Kirkton\n")
    assert commands.command_lines(text) == []
    text = "award Kirkton\nset the moon to cheese\nHi there\n"
    assert [c.name for c in commands.command_lines(text)] == ["award", ""]


# -- each command, end to end -----------------------------------------------

def test_award_and_set_status(bot: Harness) -> None:
    send(bot, command_mail("Hello,\n\naward Kirkton\n"
                           "set status of glenbrae primary to self-review "
                           "complete\n\nThanks"))
    assert bot.school("Kirkton Primary School")["status"] == "awarded"
    assert bot.school("Glenbrae Primary School")["status"] == \
        "self_review_complete"
    [reply] = replies(bot)
    assert "2 done, 0 refused" in str(bot.sent("command-reply")[0]["Subject"])
    assert "award Kirkton: Kirkton Primary School: invited → awarded" in reply
    history = bot.school("Kirkton Primary School")["history"]
    assert any(h["event"] == "command" and "award Kirkton" in h["detail"]
               for h in history)


def test_award_congratulates_the_school_and_copies_the_lead(
        bot: Harness) -> None:
    send(bot, command_mail("award Kirkton"))
    [message] = bot.sent("award-congratulations")
    assert str(message["To"]) == FIONA
    assert str(message["Cc"]) == MORAG
    assert str(message["Subject"]).startswith(
        "Congratulations: Kirkton Primary School is a Digital School [ref s")
    text = body(message)
    assert "Dear Fiona Baird," in text
    assert "Kirkton Primary School has been awarded Digital School status" \
        in text
    assert "We have copied the lead contact of Glenbrae Cluster" in text
    [reply] = replies(bot)
    assert ("award Kirkton: Kirkton Primary School: invited → awarded; the "
            "school is congratulated") in reply
    # Awarded already: nothing changes, and no second congratulations.
    send(bot, command_mail("award Kirkton"), "2027-01-12 10:05")
    assert "Kirkton Primary School was already awarded" in replies(bot)[-1]
    assert len(bot.sent("award-congratulations")) == 1


def test_set_status_to_awarded_congratulates_too(bot: Harness) -> None:
    # Glenbrae High's contact is the lead: sent to her, with no copy.
    send(bot, command_mail("set status of Glenbrae High to awarded\n"
                           "set status of St Serf's to self-review "
                           "complete\n"))
    [message] = bot.sent("award-congratulations")
    assert str(message["To"]) == MORAG
    assert message["Cc"] is None
    assert "Glenbrae High School is a Digital School" in str(message["Subject"])
    assert bot.sent("award-congratulations", "d.oneill@stserfs.fife.example"
                    ".sch.uk") == []


def test_not_yet_records_the_outcome_and_tells_the_school(bot: Harness) -> None:
    send(bot, command_mail("set status of Kirkton to visit requested"))
    send(bot, command_mail(
        "not yet Kirkton: More coding in the upper school, please. Then "
        "ask again.\n"), "2027-01-12 10:05")
    school = bot.school("Kirkton Primary School")
    assert school["status"] == "self_review_complete"
    assert school["visit_outcome"] == "not-yet"
    assert school["visit_notes"] == ("More coding in the upper school, please. "
                                     "Then ask again")
    [told] = bot.sent("visit-not-yet-outcome", FIONA)
    assert "More coding in the upper school, please." in body(told)
    assert ("not yet Kirkton: More coding in the upper school, please. Then "
            "ask again: Kirkton Primary School: not yet; back to self-review "
            "complete; the school is told with the notes") in replies(bot)[-1]
    assert any(h["event"] == "visit-outcome" and "not-yet" in h["detail"]
               for h in school["history"])


def test_not_yet_is_refused_before_a_visit(bot: Harness) -> None:
    send(bot, command_mail("not yet Kirkton: too early"))
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert bot.sent("visit-not-yet-outcome") == []
    assert ("Kirkton Primary School is invited: not yet is the outcome of a "
            "validation visit") in replies(bot)[-1]


def test_status_completing_a_cluster_assigns_its_validator(bot: Harness) -> None:
    send(bot, command_mail("set status of Glenbrae High to complete\n"
                           "set status of Glenbrae Primary to complete\n"
                           "award #3\naward st serfs\n"))
    assert bot.cluster("Glenbrae")["validator"]["email"] == ISLA
    assert len(bot.sent("validator-assignment", ISLA)) == 1
    assert "Isla Fraser is assigned as validator" in replies(bot)[0]


def test_assign_and_change_validator(bot: Harness) -> None:
    send(bot, command_mail("assign validator Catriona to Glenbrae"))
    [reply] = replies(bot)
    assert "have not finished the self-review" in reply
    assert bot.cluster("Glenbrae")["validator"] is None

    send(bot, command_mail("award Glenbrae High\naward Glenbrae Primary\n"
                           "award Kirkton\naward St Serf's\n"),
         "2027-01-12 10:05")
    assert bot.cluster("Glenbrae")["validator"]["email"] == ISLA
    send(bot, command_mail("assign validator catriona.sinclair@dsa.example.org"
                           " to Glenbrae Cluster\n"
                           "assign validator Graeme Munro to Glenbrae\n"),
         "2027-01-12 10:10")
    cluster = bot.cluster("Glenbrae")
    assert cluster["validator"]["email"] == CATRIONA
    assert cluster["status"] == "validator_assigned"
    assert len(bot.sent("validator-assignment", CATRIONA)) == 1
    assert len(bot.sent("validator-assignment", MORAG)) == 2  # introductions
    reply = replies(bot)[-1]
    assert "in place of Isla Fraser" in reply
    assert "Graeme Munro does not validate clusters in Fife" in reply


def test_replace_contact_and_resend_invitation(bot: Harness) -> None:
    send(bot, command_mail("replace contact of Kirkton with Jo Bell "
                           "<Jo.Bell@kirkton.example.org>\n"
                           "resend invitation to kirkton primary\n"))
    school = bot.school("Kirkton Primary School")
    assert school["contact_email"] == "jo.bell@kirkton.example.org"
    assert school["contact_name"] == "Jo Bell"
    assert len(bot.sent("invitation", "jo.bell@kirkton.example.org")) == 1
    assert "2 done, 0 refused" in str(bot.sent("command-reply")[0]["Subject"])


def test_an_invitation_sent_again_waits_for_working_hours(
        bot: Harness) -> None:
    # Guards a bug: it went at once, on a Saturday night.
    before = len(bot.sent("invitation"))
    send(bot, command_mail("resend invitation to Kirkton"), "2027-01-16 22:30")
    assert len(bot.sent("invitation")) == before
    said = body(bot.sent("command-reply", STAFF)[-1])
    assert "to go again, in working hours (Monday 18 January at 08:" in said
    # The export follows the latest invitation, not the first, long sent.
    waiting = bot.school("Kirkton Primary School")["invitation"]
    assert waiting["status"] == "pending" and waiting["sent_at"] is None
    assert waiting["due"].startswith("2027-01-18T08:")

    bot.at("2027-01-18 10:00")
    bot.cycle()
    assert len(bot.sent("invitation")) == before + 1
    assert bot.school("Kirkton Primary School")["invitation"]["status"] == "sent"


def test_an_invitation_not_gone_yet_is_not_queued_twice(
        tmp_path: Path) -> None:
    # Guards a bug: asked for before the first had gone (it waits for
    # working hours), a second invitation was queued beside it.
    bot = Harness(trusting_config(tmp_path), "2027-01-16 10:00")  # Saturday
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert bot.sent("invitation", FIONA) == []
    send(bot, command_mail("resend invitation to Kirkton"), "2027-01-16 11:00")
    said = body(bot.sent("command-reply", STAFF)[-1])
    assert ("has not gone yet: it goes Monday 18 January at 08:30; none "
            "added") in " ".join(said.split())
    bot.at("2027-01-18 10:00")
    bot.cycle()
    assert len(bot.sent("invitation", FIONA)) == 1
    bot.close()


def test_clear_bounce_lifts_the_mark_from_an_address(bot: Harness) -> None:
    bot.at("2027-01-12 09:50")
    bot.deliver(sample("07-bounce").replace(
        b"e.hart@balgonie-ps.fife.example.sch.uk", FIONA.encode()))
    bot.cycle()
    assert bot.bot.store.is_undeliverable(FIONA)

    send(bot, command_mail(f"clear bounce for {FIONA}\n"
                           "clear bounce for nobody@example.org\n"))
    assert not bot.bot.store.is_undeliverable(FIONA)
    said = body(bot.sent("command-reply", STAFF)[-1])
    assert f"{FIONA} is no longer marked undeliverable" in said
    assert "nobody@example.org was not marked undeliverable" in said
    assert bot.school("Kirkton Primary School")["undeliverable"] is False
    send(bot, command_mail("resend invitation to Kirkton"), "2027-01-12 10:05")
    assert len(bot.sent("invitation", FIONA)) == 2


def test_send_file(bot: Harness) -> None:
    send(bot, command_mail("send file of Glenbrae Cluster"))
    [message] = bot.sent("command-reply", STAFF)
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    text = str(part.get_content())
    assert '"name": "Kirkton Primary School"' in text
    assert '"local_authority": "Fife"' in text


def test_confirm_and_correct_a_nomination(bot: Harness) -> None:
    # A nomination without its council is waiting for details.
    send(bot, make_mail("lead@ardmore.example.org", "Cluster nomination",
                        "Cluster name: Ardmore Cluster\n"
                        "Lead contact: Fiona MacLeod, lead@ardmore.example.org\n"
                        "Schools:\n1. Ardmore Primary School (primary) - "
                        "Alan Reid - alan@ardmore.example.org\n"))
    assert bot.cluster("Ardmore")["status"] == "incomplete"
    send(bot, command_mail("confirm nomination Ardmore"), "2027-01-12 10:05")
    assert bot.cluster("Ardmore")["status"] == "incomplete"
    assert "cannot start without the local authority" in replies(bot)[0]

    send(bot, command_mail("set council of Ardmore to Argyll & Bute\n"
                           "rename cluster Ardmore Cluster to Ardmore ASG\n"
                           "confirm nomination of Ardmore ASG\n"),
         "2027-01-12 10:10")
    cluster = bot.cluster("Ardmore")
    assert cluster["name"] == "Ardmore ASG"
    assert cluster["local_authority"] == "Argyll and Bute"
    assert cluster["status"] == "active"
    assert len(bot.sent("invitation", "alan@ardmore.example.org")) == 1
    assert "3 done, 0 refused" in str(bot.sent("command-reply")[-1]["Subject"])


def test_accept_a_contact_address(bot: Harness) -> None:
    if not hasattr(bot.bot.pipeline.flow, "accept_contact"):
        pytest.skip("Workflow.accept_contact is not there yet")
    send(bot, command_mail("accept Office@kirkton-ps.fife.example.sch.uk "
                           "for Kirkton\naccept nobody for Kirkton\n"
                           "accept a@b.example for Nowhere\n"))
    assert "1 done, 2 refused" in str(bot.sent("command-reply")[0]["Subject"])
    history = bot.school("Kirkton Primary School")["history"]
    assert any(h["event"] == "contact-accepted"
               and "office@kirkton-ps.fife.example.sch.uk" in h["detail"]
               for h in history)


def the_digest(bot: Harness) -> str:
    """The Message-ID of the digest sent to staff next morning."""
    bot.at("2027-01-13 08:00")
    bot.cycle()
    return str(bot.sent("digest", STAFF)[-1]["Message-ID"])


def test_an_answer_to_mail_sent_to_staff_authenticates_a_command(
        bot: Harness) -> None:
    # No trusted server's Authentication-Results at all (Microsoft 365).
    digest_id = the_digest(bot)
    send(bot, command_mail("award Kirkton", auth=None,
                           subject="Re: Programme digest",
                           In_Reply_To=digest_id, References=digest_id),
         "2027-01-13 10:00")
    assert bot.school("Kirkton Primary School")["status"] == "awarded"
    [handled] = [m for m in bot.bot.store.all_messages() if m["from"] == STAFF]
    assert "answers mail sent to this address (digest" in handled["reason"]


@pytest.mark.parametrize("how", ["subject", "to", "other person", "old",
                                 "not sent to them"])
def test_what_is_no_answer_to_mail_sent_to_staff(bot: Harness,
                                                 how: str) -> None:
    flow = bot.bot.pipeline.flow
    token = flow.tokens.for_person(STAFF)
    digest_id = the_digest(bot)
    when = "2027-01-13 10:00"
    headers: dict[str, str] = {}
    if how == "subject":  # the reference alone, as anyone Cc'd sees it
        headers = {"subject": f"Re: Programme digest [ref {token}]"}
    elif how == "to":  # in an address written to, at any domain
        headers = {"To": f"x+{token}@elsewhere.example.org"}
    elif how == "other person":  # answers mail that went to someone else
        other = next(o for o in bot.bot.store.all_outgoing()
                     if STAFF not in o["to"])
        headers = {"In_Reply_To": other["message_id"]}
    elif how == "old":
        headers = {"In_Reply_To": digest_id}
        when = "2027-02-13 10:00"  # past ANSWER_DAYS
    else:  # a Message-ID made up with the staff reference in it
        headers = {"In_Reply_To": f"<{token}.0123456789abcdef01234567@dsa.example.org>"}
    refused_without_change(bot, command_mail("award Kirkton", auth=None,
                                             **headers), when)
    assert "not carried out" in str(bot.sent("command-reply")[-1]["Subject"])


def test_staff_reference_overrides_no_dmarc_fail(bot: Harness) -> None:
    """Guards a defect found by hostile testing: a forger who copied a
    Message-ID of mail sent to staff (a Cc'd outsider sees it in
    References) was obeyed although the trusted server said DMARC failed."""
    digest_id = the_digest(bot)
    refused_without_change(bot, command_mail(
        "award Kirkton", auth=FAIL, subject="Re: a school",
        In_Reply_To=digest_id, References=digest_id), "2027-01-13 10:00")
    [message] = bot.sent("command-reply")
    assert "not carried out" in str(message["Subject"])
    assert "dmarc=fail" in body(message)


# -- refusals -----------------------------------------------------------------

def refused_without_change(bot: Harness, raw: bytes,
                           when: str = "2027-01-12 10:00") -> None:
    before = record(bot)
    send(bot, raw, when)
    assert record(bot) == before


@pytest.mark.parametrize("auth", [None, FAIL,
                                  PASS.replace("dsa.example.org", "evil.example")])
def test_spoofed_staff_command(bot: Harness, auth: str | None) -> None:
    refused_without_change(bot, command_mail("award Kirkton", auth=auth,
                                             Reply_To="x@evil.example"))
    [message] = bot.sent("command-reply")
    assert str(message["To"]) == STAFF
    assert "not carried out" in str(message["Subject"])
    assert "nothing was changed" in body(message)
    assert bot.export()["set_aside"][0]["from"] == STAFF
    found = digest_text(bot)
    assert "Staff commands refused" in found and '"award Kirkton"' in found


def test_forged_header_from_another_server(bot: Harness) -> None:
    forged = ("mx.evil.example; dkim=pass header.d=dsa.example.org; "
              "dmarc=pass header.from=dsa.example.org")
    raw = on_top(make_mail(STAFF, "Commands", "award Kirkton\n"),
                 f"Authentication-Results: {forged}", received(),
                 f"Authentication-Results: {FAIL}",
                 f"Authentication-Results: {forged}")
    refused_without_change(bot, raw)
    assert "not carried out" in str(bot.sent("command-reply")[0]["Subject"])


def test_forged_trusted_header_below_the_servers_own(bot: Harness) -> None:
    raw = on_top(make_mail(STAFF, "Commands", "award Kirkton\n"),
                 received(), f"Authentication-Results: {FAIL}",
                 received("mail.evil.example"),
                 f"Authentication-Results: {PASS}")
    refused_without_change(bot, raw)


def test_non_staff_sender_with_a_pass(bot: Harness) -> None:
    auth = PASS.replace("dsa.example.org", "elsewhere.example.org")
    refused_without_change(bot, command_mail(
        "award Kirkton", sender="staff@elsewhere.example.org", auth=auth))
    assert bot.sent("command-reply") == []
    # A school's own contact, authenticated, is only a school writing in:
    # the line is a comment, not a command.
    auth = PASS.replace("dsa.example.org", "kirkton-ps.fife.example.sch.uk")
    send(bot, command_mail("award Kirkton", sender=FIONA, auth=auth),
         "2027-01-12 10:05")
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert bot.sent("command-reply") == []


def test_commands_in_quotes_or_signature(bot: Harness) -> None:
    text = ("Thanks for the digest.\n\n-- \nCoordinator\naward Kirkton\n\n"
            "On Tue, 12 Jan 2027 at 09:00, Someone wrote:\n> award St Serf's\n")
    refused_without_change(bot, command_mail(text))
    assert bot.sent("command-reply") == []


def test_ambiguous_and_unknown_names(bot: Harness) -> None:
    refused_without_change(bot, command_mail(
        "award Glenbrae\nresend invitation to Nowhere Academy\n"
        "set status of Kirkton to brilliant\nset the moon to cheese\n"))
    [reply] = replies(bot)
    assert "0 done, 4 refused" in str(bot.sent("command-reply")[0]["Subject"])
    assert re.search(r"Glenbrae could be any of 2: #\d+ Glenbrae High School "
                     r"in Glenbrae Cluster; #\d+ Glenbrae Primary School", reply)
    assert "no school is called Nowhere Academy" in reply
    assert "brilliant is not a school status" in reply
    assert "not understood" in reply
    assert len(events(bot, "command-refused")) == 4
    assert "Glenbrae could be any of 2" in digest_text(bot)


def test_a_refused_command_beside_a_done_one(bot: Harness) -> None:
    send(bot, command_mail("award Kirkton\naward Glenbrae\n"))
    assert bot.school("Kirkton Primary School")["status"] == "awarded"
    assert bot.school("Glenbrae High School")["status"] == "invited"
    assert bot.school("Glenbrae Primary School")["status"] == "invited"


def test_refusal_shows_in_the_sent_digest(bot: Harness) -> None:
    send(bot, command_mail("award Kirkton", auth=FAIL))
    bot.at("2027-01-13 07:35")
    bot.cycle()
    digests = bot.sent("digest", STAFF)
    assert "Staff commands refused" in body(digests[-1])
    assert "award Kirkton" in body(digests[-1])


def test_lines_like_failed_commands_are_refused_as_not_understood(
        bot: Harness) -> None:
    send(bot, command_mail("Please award Kirkton.\nawrd #4\n"
                           "Could you look at #3?\nThanks\n"))
    assert bot.school("Kirkton Primary School")["status"] == "awarded"
    [reply] = replies(bot)
    assert "1 done, 2 refused" in str(bot.sent("command-reply")[0]["Subject"])
    assert 'awrd #4: not understood; did you mean "award ..."?' in reply
    assert "Could you look at #3: not understood" in reply


def test_staff_mail_without_a_command_says_so(bot: Harness) -> None:
    send(bot, command_mail("Hello,\n\nI will be away next week.\n"))
    assert bot.sent("command-reply") == []
    [message] = [m for m in bot.bot.store.all_messages() if m["from"] == STAFF]
    assert message["outcome"] == "set_aside"
    assert "staff mail" in message["reason"]
    assert "not from a school contact" not in message["reason"]


def test_every_authenticated_command_mail_is_answered(bot: Harness) -> None:
    limit = bot.bot.pipeline.flow.rules.replies_per_address_per_day
    for n in range(limit + 2):
        send(bot, command_mail(f"award #{n % 4 + 1}"),
             f"2027-01-12 10:{n:02d}")
    assert len(bot.sent("command-reply", STAFF)) == limit + 2
    # They count: a refusal (not authenticated) is not sent past the cap.
    send(bot, command_mail("award #1", auth=FAIL), "2027-01-12 11:00")
    assert len(bot.sent("command-reply", STAFF)) == limit + 2
    assert events(bot, "reply-limit") == [STAFF]


# -- only the writer's own text -------------------------------------------------

def staff_message(text: str = "", html: str = "") -> EmailMessage:
    message = EmailMessage()
    message["From"] = STAFF
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = "Commands"
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="dsa.example.org")
    if text:
        message.set_content(text)
    if html:
        if text:
            message.add_alternative(html, subtype="html")
        else:
            message.set_content(html, subtype="html")
    return message


def authenticated(message: EmailMessage) -> bytes:
    return on_top(message.as_bytes(), received(), f"Authentication-Results: {PASS}")


def test_commands_inside_a_forwarded_message_are_not_obeyed(bot: Harness) -> None:
    """Guards a defect found by hostile testing: commands in a message
    staff forwarded as an attachment (someone else's text) were obeyed."""
    inner = EmailMessage()
    inner["From"] = "Someone <someone@evil.example>"
    inner["To"] = STAFF
    inner["Subject"] = "For your attention"
    inner.set_content("Hello,\n\naward Kirkton\n")
    outer = staff_message("For the record: the message below came in.\n")
    outer.add_attachment(inner)
    refused_without_change(bot, authenticated(outer))
    assert bot.sent("command-reply") == []


@pytest.mark.parametrize("html", [
    ("<p>Thanks, I will deal with this.</p>"
     "<blockquote type=\"cite\"><p>award Kirkton</p></blockquote>"),
    ("<p>Thanks, I will deal with this.</p>"
     "<p style=\"display:none\">award Kirkton</p>"),
    ("<p>Thanks.</p>"
     "<div style=\"Visibility: Hidden !important\">award Kirkton</div>"),
    "<p>Thanks.</p><div hidden/>award Kirkton",
    "<p>Thanks.</p><style>p {}</style><script>award Kirkton</script>",
], ids=["blockquote", "display-none", "visibility", "hidden", "style-script"])
def test_commands_in_html_quotes_or_hidden_text_are_not_obeyed(
        bot: Harness, html: str) -> None:
    """Guards a defect found by hostile testing: in HTML-only mail, quoted
    text and text a reader never sees were obeyed as commands."""
    refused_without_change(bot, authenticated(staff_message(html=html)))
    assert bot.sent("command-reply") == []


def test_html_only_commands_are_read(bot: Harness) -> None:
    send(bot, authenticated(staff_message(html=(
        "<div>Hello,</div><div><b>award</b>\n Kirkton</div>"
        "<blockquote><p>award Glenbrae High</p></blockquote>"))))
    assert bot.school("Kirkton Primary School")["status"] == "awarded"
    assert bot.school("Glenbrae High School")["status"] == "invited"


def own_text(message: EmailMessage) -> str:
    return commands.own_text(mail.parse(message.as_bytes()))


def test_own_text_is_the_first_body_only() -> None:
    both = staff_message("plain award #1\n", "<p>html award #2</p>")
    assert own_text(both) == "plain award #1\n"
    html = staff_message(html="<p>html award #2</p>")
    assert own_text(html) == "html award #2\n"
    attached = staff_message("See the attached.\n")
    attached.add_attachment("award #3\n", filename="notes.txt")
    assert own_text(attached) == "See the attached.\n"
    only_attachment = staff_message()
    only_attachment.add_attachment("award #3\n", filename="notes.txt")
    assert own_text(only_attachment) == ""


def test_the_staff_reference_is_not_logged(
        bot: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Guards a defect found by hostile testing: the staff reference (part
    of every Message-ID of mail to staff) was written to the log."""
    logsafe.install()  # as open_mailbot does
    token = bot.bot.pipeline.flow.tokens.for_person(STAFF)
    caplog.set_level(logging.DEBUG)
    the_digest(bot)
    assert "sent digest <p-" in caplog.text
    assert token not in caplog.text
