"""Mail that follows earlier mail: the reply that completes a nomination,
and comments matched to their school by thread when the address alone
cannot tell."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Harness, body, example_config, make_mail, sample

from mailbot import setaside

GORDON = "Gordon Fleming <gfleming@burnside-ps.example.sch.uk>"
FORM_REPLY = """Hi, here you go.

Cluster name: Burnside Learning Community
Local authority: East Ayrshire Council
Lead contact: Gordon Fleming, gfleming@burnside-ps.example.sch.uk
Schools (one per line: name (primary or secondary) - contact name - email):
1. Burnside Primary (primary) - Gordon Fleming - gfleming@burnside-ps.example.sch.uk
2. Hillhead Primary (primary) - Harpreet Kaur - mrs.kaur@hillhead-ps.example.sch.uk
3. Burnside Academy (secondary) - Iain Watt - i.watt@burnside-ac.example.sch.uk

Gordon
"""


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 14:35")
    yield harness
    harness.close()


def asked(bot: Harness) -> list:  # type: ignore[type-arg]
    return bot.sent("missing-information", "gfleming@burnside-ps.example.sch.uk")


def test_the_filled_in_form_completes_the_nomination(bot: Harness) -> None:
    bot.deliver(sample("10-nomination-incomplete"))
    bot.cycle()
    request = asked(bot)[0]

    bot.at("2027-01-13 10:00")
    bot.deliver(make_mail(GORDON, f"Re: {request['Subject']}", FORM_REPLY,
                          In_Reply_To=str(request["Message-ID"])))
    bot.cycle()
    cluster = bot.cluster("Burnside")
    assert cluster["status"] == "active"
    assert cluster["local_authority"] == "East Ayrshire"
    assert [s["contact_email"] for s in cluster["schools"]] == [
        "gfleming@burnside-ps.example.sch.uk",
        "mrs.kaur@hillhead-ps.example.sch.uk",
        "i.watt@burnside-ac.example.sch.uk"]
    assert len(bot.sent("invitation")) == 3
    assert len(bot.sent("acknowledgment", "gfleming@burnside-ps.example.sch.uk")) == 1
    assert len(bot.export()["clusters"]) == 1
    assert len(asked(bot)) == 1


def test_a_partial_answer_asks_again_for_the_rest_only(bot: Harness) -> None:
    bot.deliver(sample("10-nomination-incomplete"))
    bot.cycle()
    request = asked(bot)[0]

    bot.at("2027-01-13 10:00")
    bot.deliver(make_mail(
        GORDON, f"Re: {request['Subject']}",
        "Cluster name: Burnside Learning Community\n"
        "Local authority: East Ayrshire\n\nGordon\n",
        In_Reply_To=str(request["Message-ID"])))
    bot.cycle()
    again = asked(bot)
    assert len(again) == 2
    text = body(again[1])
    missing = text[text.index("What is missing"):text.index("Please copy")]
    assert "local authority" not in missing
    assert "Burnside Academy" in missing
    assert bot.cluster("Burnside")["status"] == "incomplete"
    assert not bot.sent("invitation")


def test_a_contact_of_two_schools_is_matched_by_thread(bot: Harness) -> None:
    # One business manager looks after two schools in different clusters:
    # staff let the second nomination through (anyone may nominate, and
    # naming a contact already in the programme waits for a person).
    shared = "office@schools.example.sch.uk"
    for cluster, school in (("North", "Ashgrove Primary School"),
                            ("South", "Birchfield Primary School")):
        bot.deliver(make_mail(
            f"Lead <lead.{cluster.lower()}@example.sch.uk>",
            f"Cluster nomination - {cluster} Cluster",
            f"Cluster name: {cluster} Cluster\nLocal authority: Moray\n\n"
            f"Schools:\n1. {school} (primary) - Pat Morrison - {shared}\n"
            f"2. {cluster} Academy (secondary) - Sam Kerr - "
            f"head@{cluster.lower()}-academy.example.sch.uk\n"))
    bot.cycle()
    (held,) = bot.export()["set_aside"]
    assert f"{shared} is already the contact of Ashgrove" in held["reason"]
    setaside.replay(bot.bot.pipeline, held["id"])
    invitations = bot.sent("invitation", shared)
    assert len(invitations) == 2
    birchfield = next(m for m in invitations if "Birchfield" in str(m["Subject"]))

    bot.at("2027-01-14 10:00")
    bot.deliver(make_mail(f"Pat Morrison <{shared}>", "Re: our comments",
                          "We are strong on digital leaders.\n",
                          In_Reply_To=str(birchfield["Message-ID"])))
    bot.deliver(make_mail(f"Pat Morrison <{shared}>", "A question",
                          "Is there a dress code for the visit?\n"))
    bot.cycle()
    assert [c["text"] for c in bot.school("Birchfield Primary School")
            ["comments"]] == ["We are strong on digital leaders."]
    assert bot.school("Ashgrove Primary School")["comments"] == []
    # Without a thread or a school's name, the office's mail waits for staff.
    assert [m["subject"] for m in bot.export()["set_aside"]] == ["A question"]


def test_someone_else_replying_in_a_school_thread_changes_nothing(
        bot: Harness) -> None:
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    invitation = bot.sent("invitation", "a.reid@glenbrae-ps.fife.example.sch.uk")[0]
    bot.deliver(make_mail("Someone <someone@elsewhere.example.com>",
                          "Re: invitation", "We have completed the self-review.",
                          In_Reply_To=str(invitation["Message-ID"])))
    bot.cycle()
    assert bot.school("Glenbrae Primary School")["status"] == "invited"
    assert [m["from"] for m in bot.export()["set_aside"]] == [
        "someone@elsewhere.example.com"]


def test_a_lead_answering_the_acknowledgment_is_not_a_school_comment(
        bot: Harness) -> None:
    # Morag leads Glenbrae and is also Glenbrae High School's contact. Her
    # reply to the cluster's acknowledgment is a matter for staff.
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    ack = bot.sent("acknowledgment")[0]
    bot.deliver(make_mail("Morag Lindsay <m.lindsay@glenbrae-hs.fife.example.sch.uk>",
                          f"Re: {ack['Subject']}",
                          "Thanks. Kirkton's head is now Mrs Baird-Smith.",
                          In_Reply_To=str(ack["Message-ID"])))
    bot.cycle()
    assert bot.school("Glenbrae High School")["comments"] == []
    aside = bot.export()["set_aside"]
    assert len(aside) == 1 and "about the cluster" in aside[0]["reason"]
    assert not bot.sent("comment-receipt")


@pytest.mark.parametrize("reply, status", [
    ("All done, we submitted it this morning.", "self_review_complete"),
    ("Our self-review is done now. Thanks!", "self_review_complete"),
    ("We have not finished it yet, sorry - next week.", "invited"),
    (("We are halfway through the self-review and will have it done by "
     "Friday."), "invited"),
])
def test_a_short_reply_to_the_invitation(bot: Harness, reply: str,
                                         status: str) -> None:
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    invitation = bot.sent("invitation", "headteacher@kirkton-ps.fife.example.sch.uk")[0]
    bot.deliver(make_mail("Fiona Baird <headteacher@kirkton-ps.fife.example.sch.uk>",
                          f"Re: {invitation['Subject']}", reply,
                          In_Reply_To=str(invitation["Message-ID"])))
    bot.cycle()
    school = bot.school("Kirkton Primary School")
    assert school["status"] == status
    # What is not a completion is kept as a comment for the validator.
    assert len(school["comments"]) == (status == "invited")


def test_a_school_writing_in_another_schools_thread_changes_neither(
        bot: Harness) -> None:
    # Guards a past bug: the thread was rightly ignored, but the sender's
    # own school was then marked complete on the other school's behalf.
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    invitation = bot.sent("invitation", "a.reid@glenbrae-ps.fife.example.sch.uk")[0]
    bot.deliver(make_mail(
        "Fiona Baird <headteacher@kirkton-ps.fife.example.sch.uk>",
        f"Re: {invitation['Subject']}",
        "Glenbrae Primary asked me to say they have completed the self-review.",
        In_Reply_To=str(invitation["Message-ID"])))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert bot.school("Glenbrae Primary School")["status"] == "invited"
    aside = bot.export()["set_aside"]
    assert len(aside) == 1 and "Glenbrae Primary School" in aside[0]["reason"]
