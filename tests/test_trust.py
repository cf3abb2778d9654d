"""A school's record changes only on mail that proves it is the school's:
from its contact's address (or one staff accepted), or answering mail
sent to the school, shown by the signed reference that mail carried.
Anyone can write any From: line; these are the ways they try."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import ROOT, Harness, body, example_config, make_mail, sample

from mailbot import setaside
from mailbot.compose import Composer, Draft, without_tags
from mailbot.examples import contexts
from mailbot.tokens import Tokens, subject_tag

ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"
FIONA = "headteacher@kirkton-ps.fife.example.sch.uk"
MORAG = "m.lindsay@glenbrae-hs.fife.example.sch.uk"
DEPUTY = "deputy@kirkton-ps.fife.example.sch.uk"
STAFF = "coordinator@dsa.example.org"
SHARED = "office@schools.example.sch.uk"
DONE = "We have completed the self-review."
NOW = datetime(2027, 1, 12, 9, 35, tzinfo=UTC)


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), "2027-01-12 14:35")
    harness.deliver(sample("01-nomination-list"))
    harness.cycle()
    harness.at("2027-01-12 15:00")  # after the first digest
    yield harness
    harness.close()


def tokens(bot: Harness) -> Tokens:
    return bot.bot.pipeline.flow.tokens


def school_id(bot: Harness, name: str) -> int:
    return next(s.doc_id for s in bot.bot.store.all_schools() if s["name"] == name)


def invitation(bot: Harness, address: str, word: str = "") -> EmailMessage:
    return next(m for m in bot.sent("invitation", address)
                if word in str(m["Subject"]))


def events(bot: Harness, name: str) -> list[str]:
    return [e["event"] for e in bot.school(name)["history"]]


def next_digest(bot: Harness, when: str = "2027-01-13 08:00") -> str:
    bot.at(when)
    bot.cycle()
    return body(bot.sent("digest")[-1])


def two_schools_one_office(bot: Harness) -> None:
    """Ashgrove and Birchfield, in two clusters, share one office address
    (the second nomination, naming a contact already in the programme,
    let through by staff)."""
    for cluster, school in (("North", "Ashgrove Primary School"),
                            ("South", "Birchfield Primary School")):
        bot.deliver(make_mail(
            f"Lead <lead.{cluster.lower()}@example.sch.uk>",
            f"Cluster nomination - {cluster} Cluster",
            f"Cluster name: {cluster} Cluster\nLocal authority: Moray\n\n"
            f"Schools:\n1. {school} (primary) - Pat Morrison - {SHARED}\n"
            f"2. {cluster} Academy (secondary) - Sam Kerr - "
            f"head@{cluster.lower()}-academy.example.sch.uk\n"))
    bot.cycle()
    (held,) = [m for m in bot.export()["set_aside"]
               if "already the contact" in m["reason"]]
    setaside.replay(bot.bot.pipeline, held["id"])


# -- what mailbot sends ----------------------------------------------------

def test_mail_to_a_school_carries_its_reference(bot: Harness) -> None:
    kirkton = school_id(bot, "Kirkton Primary School")
    token = tokens(bot).for_school(kirkton)
    sent = invitation(bot, FIONA)
    assert str(sent["Subject"]).endswith(f"Kirkton Primary School {subject_tag(token)}")
    assert str(sent["Message-ID"]).startswith(f"<{token}.")
    assert sent["Reply-To"] is None  # plus addressing is off by default


def test_mail_to_a_person_carries_their_reference(bot: Harness) -> None:
    ack = bot.sent("acknowledgment", MORAG)[0]
    token = tokens(bot).for_person(MORAG)
    assert str(ack["Subject"]).endswith(subject_tag(token))
    assert str(ack["Message-ID"]).startswith(f"<{token}.")
    digest = bot.sent("digest", STAFF)[0]
    assert subject_tag(tokens(bot).for_person(STAFF)) in str(digest["Subject"])


def test_mail_about_a_school_to_staff_carries_the_staff_reference(
        bot: Harness) -> None:
    # A visit request goes to staff (no validator yet): their answer in
    # that thread must not count as the school's.
    bot.deliver(make_mail(f"Alan Reid <{ALAN}>", "Validation visit",
                          "We would like to apply for a validation visit.\n"
                          "Leadership 80%, Curriculum 75%, Culture 90%, "
                          "Professional development 70%, Resources 85%."))
    bot.cycle()
    request = bot.sent("visit-request", STAFF)[0]
    token = tokens(bot).for_person(STAFF)
    assert str(request["Subject"]).endswith(subject_tag(token))
    assert str(request["Message-ID"]).startswith(f"<{token}.")


def test_the_subject_carries_the_tag_once_even_through_replies(
        bot: Harness) -> None:
    sent = invitation(bot, FIONA)
    tag = subject_tag(tokens(bot).for_school(school_id(bot, "Kirkton Primary School")))
    bot.deliver(make_mail(f"Fiona Baird <{FIONA}>", f"Re: {sent['Subject']}",
                          "Our digital leaders run a coding club.",
                          In_Reply_To=str(sent["Message-ID"])))
    bot.cycle()
    receipt = bot.sent("comment-receipt", FIONA)[0]
    bot.deliver(make_mail(f"Fiona Baird <{FIONA}>",
                          f"RE: Re: {receipt['Subject']} {tag}",
                          "And we have a new website.",
                          In_Reply_To=str(receipt["Message-ID"])))
    bot.cycle()
    receipts = bot.sent("comment-receipt", FIONA)
    assert len(receipts) == 2
    assert all(str(m["Subject"]).count("[ref ") == 1 for m in receipts)
    # The digest quotes no reference back in what it lists.
    assert "[ref " not in next_digest(bot)


def test_a_template_quoting_a_subject_does_not_pile_up_tags(tmp_path: Path) -> None:
    (tmp_path / "quote.txt").write_text("Subject: Re: {{ subject }}\n\nHi.\n")
    (tmp_path / "quote.html").write_text("<p>Hi.</p>\n")
    keys = Tokens(b"0123456789abcdef0123456789abcdef")
    composer = Composer(tmp_path, "Programme", "programme@dsa.example.org",
                        salt="one", tokens=keys)
    tag = subject_tag(keys.for_school(3))
    draft = Draft(key="comment-receipt:<x@y>", kind="comment-receipt",
                  template="quote", to=("head@school.example.org",),
                  school_id=3, context={"subject": f"Re: Our comment {tag} {tag}"})
    built = composer.build(draft, NOW)
    assert built.subject == f"Re: Re: Our comment {tag}"
    # The same draft, built again after a crash, keeps its Message-ID.
    assert composer.build(draft, NOW).message_id == built.message_id
    assert built.message_id.startswith(f"<{keys.for_school(3)}.")
    assert without_tags(built.subject) == "Re: Re: Our comment"


@pytest.mark.parametrize("plus", [True, False])
def test_plus_addressing(tmp_path: Path, plus: bool) -> None:
    config = example_config(tmp_path)
    config = dataclasses.replace(config, security=dataclasses.replace(
        config.security, plus_addressing=plus))
    bot = Harness(config, "2027-01-12 14:35")
    two_schools_one_office(bot)
    birchfield = school_id(bot, "Birchfield Primary School")
    token = tokens(bot).for_school(birchfield)
    sent = invitation(bot, SHARED, "Birchfield")
    if plus:
        assert sent["Reply-To"].addresses[0].addr_spec == \
            f"programme+{token}@dsa.example.org"
    else:
        assert sent["Reply-To"] is None

    # The office answers to the Reply-To address; its mail program keeps
    # neither the subject nor the thread.
    bot.deliver(make_mail(f"Pat Morrison <{SHARED}>", "Our comments",
                          "We are strong on digital leaders.",
                          To=f"programme+{token}@dsa.example.org"))
    bot.cycle()
    comments = bot.school("Birchfield Primary School")["comments"]
    assert [c["text"] for c in comments] == ["We are strong on digital leaders."]
    assert bot.school("Ashgrove Primary School")["comments"] == []
    bot.close()


# -- matching by the reference ---------------------------------------------

def test_a_reply_is_matched_by_its_reference_when_the_ids_were_rewritten(
        tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 14:35")
    two_schools_one_office(bot)
    sent = invitation(bot, SHARED, "Birchfield")
    # The office's provider replaced the ids of the thread with its own.
    bot.deliver(make_mail(f"Pat Morrison <{SHARED}>", f"RE: {sent['Subject']}",
                          DONE, In_Reply_To="<AM0PR01MB1234@outlook.example>",
                          References="<AM0PR01MB1234@outlook.example>"))
    bot.cycle()
    assert bot.school("Birchfield Primary School")["status"] == "self_review_complete"
    assert bot.school("Ashgrove Primary School")["status"] == "invited"
    assert len(bot.sent("completion-receipt", SHARED)) == 1
    bot.close()


def test_a_forged_or_changed_reference_is_ignored(tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 14:35")
    two_schools_one_office(bot)
    birchfield = school_id(bot, "Birchfield Primary School")
    ashgrove = school_id(bot, "Ashgrove Primary School")
    token = tokens(bot).for_school(birchfield)
    changed = token[:-1] + ("a" if token[-1] != "a" else "b")
    moved = f"s{ashgrove}-{token.split('-')[1]}"
    for n, forged in enumerate((changed, moved, f"s{ashgrove}-aaaaaaaaaa")):
        bot.deliver(make_mail(f"Pat Morrison <{SHARED}>",
                              f"Re: Invitation {subject_tag(forged)}",
                              f"{DONE} ({n})"))
    bot.cycle()
    for name in ("Birchfield Primary School", "Ashgrove Primary School"):
        assert bot.school(name)["status"] == "invited"
        assert bot.school(name)["comments"] == []
    assert len(bot.export()["set_aside"]) == 3
    bot.close()


# -- one school about another ------------------------------------------------

def test_a_schools_reference_used_by_another_schools_contact_changes_neither(
        bot: Harness) -> None:
    glenbrae = school_id(bot, "Glenbrae Primary School")
    tag = subject_tag(tokens(bot).for_school(glenbrae))
    bot.deliver(make_mail(f"Fiona Baird <{FIONA}>", f"Self-review {tag}", DONE))
    bot.cycle()
    assert bot.school("Glenbrae Primary School")["status"] == "invited"
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert not bot.sent("completion-receipt")
    aside = bot.export()["set_aside"]
    assert len(aside) == 1 and "Glenbrae Primary School" in aside[0]["reason"]
    assert "another-school" in events(bot, "Glenbrae Primary School")
    assert "another-school" not in events(bot, "Kirkton Primary School")
    digest = next_digest(bot)
    refused = digest.split("Refused: wrote about another school")[1]
    assert FIONA in refused.split("Mail set aside")[0]
    assert "Glenbrae Primary School" in refused.split("Mail set aside")[0]


def test_a_school_writing_in_another_schools_thread_reaches_staff(
        bot: Harness) -> None:
    sent = invitation(bot, ALAN)
    bot.deliver(make_mail(f"Fiona Baird <{FIONA}>", "Re: your invitation",
                          "Alan asked me to say: " + DONE,
                          In_Reply_To=str(sent["Message-ID"])))
    bot.cycle()
    assert bot.school("Glenbrae Primary School")["status"] == "invited"
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    refused = next_digest(bot).split("Refused: wrote about another school")[1]
    assert (f"{FIONA} (Kirkton Primary School's contact) wrote about "
            "Glenbrae Primary School") in refused


def test_a_reference_of_one_school_does_nothing_for_another(
        bot: Harness) -> None:
    # A new address at Glenbrae Primary's domain, holding Kirkton's
    # reference, about Glenbrae Primary.
    kirkton = school_id(bot, "Kirkton Primary School")
    tag = subject_tag(tokens(bot).for_school(kirkton))
    bot.deliver(make_mail("Office <office@glenbrae-ps.fife.example.sch.uk>",
                          f"Glenbrae Primary School {tag}",
                          "Glenbrae Primary School: " + DONE))
    bot.cycle()
    for name in ("Glenbrae Primary School", "Kirkton Primary School"):
        assert bot.school(name)["status"] == "invited"
        assert "new-address" not in events(bot, name)
    assert len(bot.export()["set_aside"]) == 1
    assert not bot.sent("completion-receipt")


# -- new addresses -----------------------------------------------------------

def test_a_new_address_at_the_schools_domain_waits_for_staff(
        bot: Harness) -> None:
    bot.deliver(make_mail(f"Deputy Head <{DEPUTY}>", "Self-review", DONE))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert not bot.sent("completion-receipt")
    assert "new-address" in events(bot, "Kirkton Primary School")
    kirkton = school_id(bot, "Kirkton Primary School")
    waiting = next_digest(bot).split("New addresses waiting to be accepted")[1]
    waiting = waiting.split("Refused:")[0]
    assert ("new address at Kirkton Primary School's domain: "
            f"{DEPUTY} wrote on Tuesday 12 January 2027") in waiting
    assert f'accept it with "accept {DEPUTY} for #{kirkton}"' in waiting

    flow = bot.bot.pipeline.flow
    done = flow.accept_contact(kirkton, f"Deputy Head <{DEPUTY.upper()}>", STAFF)
    assert done == (f"{DEPUTY} accepted as a contact of Kirkton Primary "
                    f"School (school {kirkton})")
    assert "already" in flow.accept_contact(kirkton, DEPUTY, STAFF)
    assert "already" in flow.accept_contact(kirkton, FIONA, STAFF)
    bot.bot.store.commit()
    history = bot.school("Kirkton Primary School")["history"]
    assert [e["detail"] for e in history if e["event"] == "contact-accepted"] \
        == [f"{DEPUTY}, accepted by {STAFF}"]

    bot.deliver(make_mail(f"Deputy Head <{DEPUTY}>", "Self-review again",
                          "As I said: " + DONE))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "self_review_complete"
    assert len(bot.sent("completion-receipt", DEPUTY)) == 1
    # Mail is still written to the contact; the new address is no longer
    # waiting.
    assert bot.school("Kirkton Primary School")["contact_email"] == FIONA
    waiting = next_digest(bot, "2027-01-14 08:00").split(
        "New addresses waiting to be accepted")[1].split("Refused:")[0]
    assert DEPUTY not in waiting


def test_a_colleague_answering_the_schools_mail_writes_for_it(
        bot: Harness) -> None:
    # Fiona forwarded the invitation to her deputy, who answers it.
    sent = invitation(bot, FIONA)
    bot.deliver(make_mail(f"Deputy Head <{DEPUTY}>", f"Re: FW: {sent['Subject']}",
                          DONE, In_Reply_To="<rewritten@mail.example>"))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "self_review_complete"


def test_a_domain_that_schools_share_proves_no_colleague(tmp_path: Path) -> None:
    # Both schools' contacts are at the council's domain, where many work.
    bot = Harness(example_config(tmp_path), "2027-01-12 14:35")
    bot.deliver(make_mail(
        "Lead <lead@moray.example.gov.uk>", "Cluster nomination - Elgin Cluster",
        "Cluster name: Elgin Cluster\nLocal authority: Moray\n\nSchools:\n"
        "1. Ashgrove Primary School (primary) - Pat Kerr - "
        "ashgrove@moray.example.gov.uk\n"
        "2. Elgin Academy (secondary) - Sam Kerr - elgin@moray.example.gov.uk\n"))
    bot.cycle()
    sent = invitation(bot, "ashgrove@moray.example.gov.uk")
    bot.deliver(make_mail("Officer <officer@moray.example.gov.uk>",
                          f"Re: {sent['Subject']}", DONE,
                          In_Reply_To=str(sent["Message-ID"])))
    bot.deliver(make_mail("Officer <officer@moray.example.gov.uk>",
                          "A question", "When is the next event?"))
    bot.cycle()
    assert bot.school("Ashgrove Primary School")["status"] == "invited"
    assert "new-address" not in events(bot, "Ashgrove Primary School")
    assert len(bot.export()["set_aside"]) == 2
    bot.close()


def test_accepting_a_contact_needs_an_address_and_a_school(bot: Harness) -> None:
    flow = bot.bot.pipeline.flow
    with pytest.raises(ValueError):
        flow.accept_contact(school_id(bot, "Kirkton Primary School"),
                            "not an address", STAFF)
    with pytest.raises(KeyError):
        flow.accept_contact(999, DEPUTY, STAFF)


def test_a_stranger_naming_the_school_changes_nothing(bot: Harness) -> None:
    bot.deliver(make_mail("Kirkton Primary <kirkton.primary.school@gmail.com>",
                          "Kirkton Primary School: self-review complete",
                          "Kirkton Primary School: " + DONE))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert "new-address" not in events(bot, "Kirkton Primary School")
    assert not bot.sent(to="kirkton.primary.school@gmail.com")
    aside = bot.export()["set_aside"]
    assert [m["from"] for m in aside] == ["kirkton.primary.school@gmail.com"]
    waiting = next_digest(bot).split("New addresses waiting to be accepted")[1]
    assert "gmail.com" not in waiting.split("Refused:")[0]


def test_someone_elsewhere_with_the_schools_reference_changes_nothing(
        bot: Harness) -> None:
    sent = invitation(bot, FIONA)
    bot.deliver(make_mail("Someone <someone@elsewhere.example.com>",
                          f"Re: {sent['Subject']}", DONE,
                          In_Reply_To=str(sent["Message-ID"])))
    bot.cycle()
    assert bot.school("Kirkton Primary School")["status"] == "invited"
    assert [m["from"] for m in bot.export()["set_aside"]] == [
        "someone@elsewhere.example.com"]


def test_mail_built_without_tokens_carries_no_reference() -> None:
    composer = Composer(ROOT / "templates", "Programme",
                        "programme@dsa.example.org",
                        {"programme_name": "Programme", "sender_name": "Programme",
                         "programme_address": "programme@dsa.example.org"},
                        salt="x")
    built = composer.build(Draft(key="k", kind="alert", template="alert",
                                 to=(STAFF,), context=contexts()["alert"]), NOW)
    assert "[ref " not in built.subject and built.reference == ""
    assert built.message_id.startswith("<mailbot.")
