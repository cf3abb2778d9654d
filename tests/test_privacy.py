"""Personal data: a subject access export finds one person everywhere the
real flow puts them; erasure leaves nothing of them in the record but the
programme's history; old copies of mail go after privacy.keep_raw_days,
from the record, the set-aside copies and the mailbox (Maildir and a real
Dovecot)."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import html
import io
import json
import os
import stat
import zipfile
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, example_config, make_mail, sample, workbook
from servers import DovecotMailbox
from test_cli import deliver, mailbot
from test_sources import maildir_config, put, raw_message

from mailbot import privacy, setaside, spreadsheets
from mailbot.privacy import PrivacyError
from mailbot.sources.imap import ImapSource
from mailbot.sources.maildir import MaildirSource
from mailbot.store import Store

ANN = "ann.planted@kirkbrae-ps.fife.example.sch.uk"
# As she writes it: the record keeps addresses in lower case.
ANN_FROM = "Ann Planted <Ann.Planted@Kirkbrae-PS.fife.example.sch.uk>"
QUINN = "q.other@eastfield-ps.fife.example.sch.uk"
QUINN_FROM = f"Quinn Other <{QUINN}>"
EWAN = "e.hart@balgonie-ps.fife.example.sch.uk"
START = "2027-01-12 12:00"


def nomination() -> bytes:
    return make_mail(ANN_FROM, "Cluster nomination - Kirkbrae Cluster", f"""\
Hello,

Cluster name: Kirkbrae Cluster
Local authority: Fife Council
Lead contact: Ann Planted, {ANN}

Schools:
1. Kirkbrae Primary School (primary) - Ann Planted - {ANN}
2. Eastfield Primary School (primary) - Quinn Other - {QUINN}

Ann
""")


def comment(sender: str, text: str) -> bytes:
    return make_mail(sender, "Our comments", text)


def bounce(address: str) -> bytes:
    return sample("07-bounce").replace(EWAN.encode(), address.encode())


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), START)
    yield harness
    harness.close()


def plant_ann_everywhere(bot: Harness) -> None:
    """Ann leads a cluster and is a school's contact; she comments, is
    named in another school's comment, sends bulk mail (set aside), gets
    too many answers in a day (reply limit), then bounces (undeliverable)
    just after her last mail, whose answer is suppressed with its text
    kept."""
    bot.deliver(nomination())
    bot.cycle()
    bot.at("2027-01-12 13:00")
    bot.deliver(comment(ANN_FROM, "Strengths: coding club.\n\n"
                        "Weaknesses: our Acceptable Usage Policy is old."))
    bot.deliver(comment(QUINN_FROM, "Please also copy Ann Planted "
                        f"({ANN}) on anything about Eastfield."))
    bot.deliver(make_mail(ANN_FROM, "Kirkbrae news", "Our term newsletter.",
                          List_Id="Kirkbrae news <news.kirkbrae.example>",
                          Precedence="bulk"))
    for n in range(5):  # the acknowledgment and receipt make seven
        bot.deliver(comment(ANN_FROM, f"One more thought, number {n}."))
    bot.cycle()
    bot.at("2027-01-14 10:00")  # a day after the reply limit struck
    bot.deliver(make_mail(ANN_FROM, "Self-review",
                          "We have completed the self-review."))
    bot.deliver(bounce(ANN))  # in the same poll, before the answer goes
    bot.cycle()


def access(bot: Harness, address: str = ANN) -> dict[str, Any]:
    export = privacy.subject_access(bot.bot.store, bot.config, address,
                                    bot.clock.now())
    json.dumps(export)  # it is JSON as it stands
    return export


# -------------------------------------------------------- subject access

def test_the_export_holds_no_comment_of_others_that_does_not_name_them(
        bot: Harness) -> None:
    plant_ann_everywhere(bot)
    bot.at("2027-01-15 10:00")
    bot.deliver(comment(QUINN_FROM, "Our wifi in the hall keeps dropping."))
    bot.cycle()

    schools = {s["record"]["name"]: s["record"]
               for s in access(bot)["schools"]}
    eastfield = [c["text"] for c in schools["Eastfield Primary School"][
        "comments"]]
    assert len(eastfield) == 1 and ANN in eastfield[0]
    assert not any("wifi in the hall" in text for school in schools.values()
                   for text in (c["text"] for c in school["comments"]))
    # Still held, as ever, and shown to whom it is about.
    assert any("wifi in the hall" in c["text"] for c in bot.school(
        "Eastfield Primary School")["comments"])

    # A comment naming her by name only is about her: it is shown.
    bot.at("2027-01-15 11:00")
    bot.deliver(comment(QUINN_FROM, "Ann Planted ran our staff training "
                        "on Seesaw; she was off sick in March."))
    bot.cycle()
    schools = {s["record"]["name"]: s["record"]
               for s in access(bot)["schools"]}
    assert any("Ann Planted ran" in c["text"]
               for c in schools["Eastfield Primary School"]["comments"])


def test_the_export_finds_the_person_everywhere_the_flow_put_them(
        bot: Harness) -> None:
    plant_ann_everywhere(bot)

    export = access(bot, ANN.upper())  # whatever the case
    assert export["address"] == ANN
    assert export["programme_roles"] == []

    (cluster,) = export["clusters"]
    assert cluster["roles"] == ["lead contact"]
    assert cluster["record"]["lead"] == {"name": "Ann Planted", "email": ANN}
    schools = {s["record"]["name"]: s for s in export["schools"]}
    assert schools["Kirkbrae Primary School"]["roles"] == ["school contact"]
    # Named in the text of another school's comment.
    assert schools["Eastfield Primary School"]["roles"] == ["named"]
    assert any(ANN in c["text"] for c in
               schools["Eastfield Primary School"]["record"]["comments"])

    subjects = [m["subject"] for m in export["messages_from"]]
    assert "Cluster nomination - Kirkbrae Cluster" in subjects
    assert "Kirkbrae news" in subjects and "Self-review" in subjects
    assert all(m["from"] == ANN for m in export["messages_from"])
    # The bounce that names her, from someone else.
    assert any("undeliverable" in str(m["reason"])
               for m in export["messages_naming"])

    texts = [c["text"] for c in export["comments"]]
    assert any("Acceptable Usage Policy is old" in t for t in texts)

    kinds = {o["kind"] for o in export["outgoing"]}
    assert {"acknowledgment", "welcome", "invitation",
            "comment-receipt", "completion-receipt"} <= kinds
    kept = [o for o in export["outgoing"] if o["raw"]]
    assert kept and all(o["status"] == "suppressed" for o in kept)
    assert all(ANN in o["text"] for o in kept)  # the raw text, readable

    events = {e["event"] for e in export["events"]}
    assert {"comment", "undeliverable", "nominated"} <= events
    assert export["reply_limits"]
    assert {e["detail"] for e in export["reply_limits"]} == {ANN}
    (mark,) = export["undeliverable"]
    assert mark["email"] == ANN

    (copy,) = export["set_aside_copies"]
    assert copy["from"] == ANN
    assert "Our term newsletter." in copy["text"]
    assert privacy.is_empty(access(bot, "nobody@example.org"))


def test_the_export_matches_whole_addresses_only(bot: Harness) -> None:
    plant_ann_everywhere(bot)

    assert privacy.is_empty(access(bot, "planted@kirkbrae-ps.fife.example.sch.uk"))
    assert privacy.is_empty(access(bot, "ann.planted@kirkbrae-ps.fife"))
    with pytest.raises(PrivacyError, match="not an email address"):
        access(bot, "Ann Planted")


# --------------------------------------------------------------- erasure

def test_erasure_leaves_the_history_and_nothing_of_the_person(
        tmp_path: Path) -> None:
    config = example_config(tmp_path)
    first = Harness(config, START)
    plant_ann_everywhere(first)
    first.close()
    # A restart: the snapshot written at the start holds her details.
    bot = Harness(config, "2027-01-14 11:00")
    store = bot.bot.store
    before = {name: len(docs) for name, docs in
              privacy.personal_documents(store).items()}
    statuses = sorted(s["status"] for s in store.all_schools())
    copy = setaside.copy_path(store, store.set_aside_messages()[0]["key"])
    assert copy.exists()

    # Without apply, only what would change.
    plan = privacy.erase(store, bot.config, ANN, bot.clock.now(), apply=False)
    assert not plan.done and plan.clusters == 1 and plan.copies == 1
    assert not privacy.is_empty(access(bot))

    done = privacy.erase(store, bot.config, ANN, bot.clock.now(), apply=True)
    assert done.done
    assert privacy.is_empty(access(bot))
    assert not copy.exists()

    # The programme's history still counts and links.
    after = {name: len(docs) for name, docs in
             privacy.personal_documents(store).items()}
    assert after["messages"] == before["messages"]
    assert after["outgoing"] == before["outgoing"]
    assert after["clusters"] == before["clusters"]
    assert after["events"] > before["events"]  # the erasure is in it
    assert sorted(s["status"] for s in store.all_schools()) == statuses
    placeholder = done.placeholder
    assert placeholder.startswith("erased-")
    assert placeholder.endswith("@erased.invalid")
    (school,) = store.schools_with_contact(placeholder)  # indexes too
    assert school["name"] == "Kirkbrae Primary School"
    assert school["contact_name"] == "[erased]"
    assert store.schools_with_contact(ANN) == []
    assert store.replies_to_since(ANN, "2000-01-01") == 0
    assert store.replies_to_since(placeholder, "2000-01-01") > 0
    (cluster,) = store.all_clusters()
    assert cluster["lead"] == {"name": "[erased]", "email": placeholder}
    assert all(c["text"] == "[erased]"
               for c in store.comments_of(school.doc_id))
    assert {m["subject"] for m in store.all_messages()
            if m["from"] == placeholder} == {"[erased]"}
    # Nor the digests of what she wrote, which could confirm a guess of it.
    assert {(m["fingerprint"], m["content"]) for m in store.all_messages()
            if m["from"] == placeholder} == {("erased", "erased")}
    # Her name and address in someone else's text are replaced too.
    eastfield = store.schools_with_contact(QUINN)[0]
    (quinn_said,) = store.comments_of(eastfield.doc_id)
    assert quinn_said["text"] == (f"Please also copy [erased] "
                                  f"({placeholder}) on anything about "
                                  "Eastfield.")
    erased = [e for e in store.events.all() if e["event"] == "erased"]
    assert {e["school_id"] for e in erased} >= {school.doc_id}
    assert all(ANN not in e["detail"] for e in erased)

    # The record on disk holds nothing of her. The backups are the
    # snapshots of the last starts: they do until they rotate out.
    bot.close()
    data = Path(bot.config.store_path)
    on_disk = data.read_text() + Path(f"{data}.journal").read_text()
    assert ANN not in on_disk.lower() and "Ann Planted" not in on_disk
    assert ANN in Path(f"{data}.1").read_text().lower()
    for _ in range(3):  # three more starts
        Harness(config, "2027-01-15 11:00").close()
    assert not any(ANN in Path(f"{data}.{n}").read_text().lower()
                   for n in (1, 2, 3))
    reopened = Store(data)
    assert privacy.is_empty(privacy.subject_access(
        reopened, bot.config, ANN, bot.clock.now()))


def test_erasure_takes_her_name_out_of_what_others_wrote_of_her(
        bot: Harness) -> None:
    # Guards a gap: a comment naming her by name alone kept her name,
    # in the comment and in the school's history.
    plant_ann_everywhere(bot)
    bot.at("2027-01-15 11:00")
    bot.deliver(comment(QUINN_FROM, "Ann Planted ran our staff training "
                        "on Seesaw; she was off sick in March."))
    bot.deliver(comment(QUINN_FROM, "Our wifi in the hall keeps dropping."))
    bot.cycle()
    store = bot.bot.store

    privacy.erase(store, bot.config, ANN, bot.clock.now(), apply=True)

    eastfield = store.schools_with_contact(QUINN)[0]
    said = [c["text"] for c in store.comments_of(eastfield.doc_id)]
    assert ("[erased] ran our staff training on Seesaw; she was off sick "
            "in March.") in said
    assert "Our wifi in the hall keeps dropping." in said
    details = [e["detail"] for e in store.history_of_school(eastfield.doc_id)
               if e["event"] == "comment"]
    assert any(d.startswith("[erased] ran our staff") for d in details)
    assert not any("Ann Planted" in d for d in details)


def test_an_accepted_address_and_its_waiting_events_are_erased(
        bot: Harness) -> None:
    """A colleague at the school's domain first waits for staff (a
    new-address event), is then accepted as a contact; erasing them
    reaches the school's accepted addresses and those events."""
    colleague = "d.second@kirkbrae-ps.fife.example.sch.uk"
    bot.deliver(nomination())
    bot.cycle()
    bot.deliver(comment(f"Dana Second <{colleague}>", "A note from Dana."))
    bot.cycle()
    store = bot.bot.store
    (kirkbrae,) = store.schools_with_contact(ANN)
    assert colleague in store.events_of({"new-address"})[0]["detail"]
    said = bot.bot.pipeline.flow.accept_contact(
        kirkbrae.doc_id, colleague, "coordinator@dsa.example.org")
    assert colleague in said
    store.commit()
    assert colleague in store.school(kirkbrae.doc_id)["contacts"]
    assert not privacy.is_empty(access(bot, colleague))

    done = privacy.erase(store, bot.config, colleague, bot.clock.now(),
                         apply=True)
    assert done.done
    assert privacy.is_empty(access(bot, colleague))
    assert colleague not in store.school(kirkbrae.doc_id).get("contacts", [])
    assert all(colleague not in str(e["detail"]) for e in store.events.all())


def test_after_erasure_nothing_goes_to_the_placeholder(bot: Harness) -> None:
    bot.deliver(nomination())
    bot.cycle()
    done = privacy.erase(bot.bot.store, bot.config, ANN, bot.clock.now(),
                         apply=True)
    sent_before = len(bot.sent())
    to_ann = len(bot.sent(to=ANN))  # before the erasure

    bot.at("2027-01-20 10:00")  # reminders fall due
    bot.cycle()
    assert bot.sent(to=done.placeholder) == []
    assert len(bot.sent(to=ANN)) == to_ann
    assert len(bot.sent(to=QUINN)) > 0
    assert len(bot.sent()) > sent_before
    assert privacy.is_empty(access(bot))


def test_queued_mail_naming_the_person_is_withdrawn(bot: Harness) -> None:
    bot.at("2027-01-16 12:00")  # a Saturday: the invitations wait
    bot.deliver(nomination())
    bot.cycle()
    store = bot.bot.store
    plan = privacy.erase(store, bot.config, ANN, bot.clock.now(), apply=False)
    assert any(w.startswith("invitation ") for w in plan.withdrawn)

    privacy.erase(store, bot.config, ANN, bot.clock.now(), apply=True)
    invitations = [o for o in store.all_outgoing() if o["kind"] == "invitation"]
    assert {o["status"] for o in invitations} == {"suppressed"}
    assert all(o["raw"] == "" for o in invitations)


def test_programme_people_are_not_erased(bot: Harness) -> None:
    bot.deliver(nomination())
    bot.cycle()
    staff = bot.config.staff[0]
    validator = bot.config.validators[0].email
    for address in (staff, validator.upper(), bot.config.programme_address):
        with pytest.raises(PrivacyError, match="config"):
            privacy.erase(bot.bot.store, bot.config, address,
                          bot.clock.now(), apply=True)
    assert access(bot, staff)["programme_roles"] == ["staff"]


def test_erasing_someone_unknown_changes_nothing(bot: Harness) -> None:
    bot.deliver(nomination())
    bot.cycle()
    done = privacy.erase(bot.bot.store, bot.config, "nobody@example.org",
                         bot.clock.now(), apply=True)
    assert done.nothing and not done.done
    assert not [e for e in bot.bot.store.events.all()
                if e["event"] == "erased"]


# Erasure and export look inside kept copies as a person reads them.

ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"  # Glenbrae Primary's contact
MORAG_FROM = "Morag Lindsay <m.lindsay@glenbrae-hs.fife.example.sch.uk>"




def nominated_again(attachment: bytes, filename: str = "schools.xlsx") -> bytes:
    """The lead sends the nomination again (set aside: the cluster is
    recorded), the schools in an attached workbook."""
    message = EmailMessage()
    message["From"] = MORAG_FROM
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = "Cluster nomination - Glenbrae Cluster"
    message["Message-ID"] = make_msgid(domain="glenbrae-hs.example.sch.uk")
    message.set_content("Cluster name: Glenbrae Cluster\nLocal authority: "
                        "Fife\nThe schools are in the attached sheet.\n")
    message.add_attachment(
        attachment, maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=filename)
    return message.as_bytes()


def kept_text(bot: Harness) -> str:
    """Every set-aside copy as a person reads it, or a grep after unzip:
    headers decoded, parts decoded, HTML entities decoded, zips unzipped."""
    texts = []
    for path in setaside.folder(bot.bot.store).glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(),
                                           policy=email.policy.default)
        for part in message.walk():
            texts += [f"{name}: {value}" for name, value in part.items()]
            if part.is_multipart():
                continue
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            texts.append(html.unescape(data.decode("utf-8", "replace")))
            if data.startswith(b"PK"):
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    texts += [archive.read(n).decode("utf-8", "replace")
                              for n in archive.namelist()]
    return "\n".join(texts).lower()


@pytest.fixture
def glenbrae(bot: Harness) -> Harness:
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert bot.bot.store.schools_with_contact(ALAN)
    return bot


def test_after_erasure_a_message_reusing_a_message_id_is_still_seen(
        glenbrae: Harness) -> None:
    # Guards a gap found so: the erasure blanked the digest of what the
    # person wrote, and a different message that reused the Message-ID of
    # one of theirs was then ignored as a copy of it.
    glenbrae.deliver(make_mail(f"Alan Reid <{ALAN}>", "Our club",
                               "Our coding club meets on Tuesdays.",
                               Message_ID="<notice@mis.example.org>"))
    glenbrae.cycle()
    assert privacy.erase(glenbrae.bot.store, glenbrae.config, ALAN,
                         glenbrae.clock.now(), apply=True).done
    glenbrae.deliver(make_mail("Fiona Baird <headteacher@kirkton-ps.fife."
                               "example.sch.uk>", "Our wifi",
                               "The wifi in the hall drops.",
                               Message_ID="<notice@mis.example.org>"))
    glenbrae.cycle()
    (aside,) = glenbrae.export()["set_aside"]
    assert "but another message" in aside["reason"]


def test_after_erasure_another_message_under_a_used_name_is_read(
        glenbrae: Harness) -> None:
    # Guards a bug found so: the erasure blanked the digest of the bytes of
    # the person's messages, and a different message delivered later under
    # the same Maildir file name was taken for one of them and moved unread.
    new = glenbrae.config.mailbox.path / "new"
    (new / "note.eml").write_bytes(make_mail(
        f"Alan Reid <{ALAN}>", "Our club", "Our coding club meets weekly."))
    glenbrae.cycle()
    assert privacy.erase(glenbrae.bot.store, glenbrae.config, ALAN,
                         glenbrae.clock.now(), apply=True).done
    (new / "note.eml").write_bytes(make_mail(
        "Fiona Baird <headteacher@kirkton-ps.fife.example.sch.uk>",
        "Our wifi", "The wifi in the hall drops."))
    glenbrae.cycle()
    texts = [c["text"] for c in glenbrae.school("Kirkton Primary School")[
        "comments"]]
    assert any("wifi in the hall" in t for t in texts)


def kept_then_erased(bot: Harness, raw: bytes) -> privacy.Erasure:
    """Deliver `raw` (to be set aside), check that the export lists its
    copy, erase Alan, and check that no copy names him any more."""
    bot.deliver(raw)
    bot.cycle()
    assert ALAN in kept_text(bot)
    copies = access(bot, ALAN)["set_aside_copies"]
    assert len(copies) == 1 and copies[0]["not_searched"] == []
    assert ALAN in copies[0]["text"].lower()
    done = privacy.erase(bot.bot.store, bot.config, ALAN, bot.clock.now(),
                         apply=True)
    assert done.done and done.copies == 1 and done.unsearched == 0
    assert ALAN not in kept_text(bot)
    return done


def test_erasure_searches_inside_an_attached_workbook(
        glenbrae: Harness) -> None:
    """Guards a defect found by hostile testing: a set-aside nomination
    named the contact only inside its XLSX, and the copy outlived the
    contact's erasure."""
    kept_then_erased(glenbrae, nominated_again(workbook(
        [["School", "Phase", "Contact", "Email"],
         ["Glenbrae Primary School", "primary", "Alan Reid", ALAN]])))


def test_erasure_searches_a_forwarded_message(glenbrae: Harness) -> None:
    """Guards a defect found by hostile testing: the person's address in
    the From: of a message forwarded as an attachment was never read."""
    inner = EmailMessage()
    inner["From"] = f"Alan Reid <{ALAN}>"
    inner["To"] = "colleague@elsewhere.example"
    inner["Subject"] = "our plans"
    inner.set_content("Some plans.\n")
    outer = EmailMessage()
    outer["From"] = "colleague@elsewhere.example"
    outer["To"] = "programme@dsa.example.org"
    outer["Subject"] = "Fwd: our plans"
    outer["Message-ID"] = make_msgid(domain="elsewhere.example")
    outer.set_content("See attached.\n")
    outer.add_attachment(inner)
    kept_then_erased(glenbrae, outer.as_bytes())


@pytest.mark.parametrize("how", ["encoded-word", "html-entities"])
def test_erasure_decodes_addresses_before_searching(
        glenbrae: Harness, how: str) -> None:
    """Guards a defect found by hostile testing: an address written only
    as an RFC 2047 encoded-word in a Cc header, or with HTML entities in
    an HTML part, was not found."""
    if how == "encoded-word":
        raw = (b"From: stranger@elsewhere.example\r\n"
               b"To: programme@dsa.example.org\r\n"
               b"Cc: =?utf-8?q?a=2Ereid=40glenbrae-ps=2Efife=2Eexample"
               b"=2Esch=2Euk?= <office@elsewhere.example>\r\n"
               b"Subject: hello\r\nMessage-ID: <ew1@elsewhere.example>\r\n"
               b"\r\nHello.\r\n")
    else:
        message = EmailMessage()
        message["From"] = "stranger@elsewhere.example"
        message["To"] = "programme@dsa.example.org"
        message["Subject"] = "hello"
        message["Message-ID"] = make_msgid(domain="elsewhere.example")
        message.set_content(
            "<p>Write to a.reid&#64;glenbrae-ps.fife.<b></b>example.sch.uk "
            "or <a href='mailto:a.reid&commat;glenbrae-ps.fife.example.sch"
            ".uk'>Alan</a></p>", subtype="html")
        raw = message.as_bytes()
    kept_then_erased(glenbrae, raw)


def test_a_copy_that_cannot_be_searched_goes_if_linked_to_the_person(
        glenbrae: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workbook that cannot be opened, or is over the bounds of
    spreadsheets.py, may name the person: the copy goes if its message is
    linked to them (here: from their cluster's lead), and the summary
    says so; the same from a stranger stays."""
    store = glenbrae.bot.store
    damaged = b"PK\x03\x04 not a workbook after all"
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for n in range(5):
            archive.writestr(f"xl/part{n}.xml", "<x/>")
    monkeypatch.setattr(spreadsheets, "MAX_MEMBERS", 4)
    from_a_stranger = EmailMessage()
    from_a_stranger["From"] = "stranger@elsewhere.example"
    from_a_stranger["To"] = "programme@dsa.example.org"
    from_a_stranger["Subject"] = "A sheet"
    from_a_stranger["Message-ID"] = make_msgid(domain="elsewhere.example")
    from_a_stranger.set_content("Attached.\n")
    from_a_stranger.add_attachment(damaged, maintype="application",
                                   subtype="octet-stream",
                                   filename="schools.xlsx")
    glenbrae.deliver(nominated_again(damaged),
                     nominated_again(many.getvalue(), "big.xlsx"),
                     from_a_stranger.as_bytes())
    glenbrae.cycle()
    kept = setaside.kept_copies(store)
    assert len(kept) == 3

    copies = access(glenbrae, ALAN)["set_aside_copies"]
    assert len(copies) == 2
    assert all(c["from"] == "m.lindsay@glenbrae-hs.fife.example.sch.uk"
               for c in copies)
    reasons = sorted(" ".join(c["not_searched"]) for c in copies)
    assert "cannot be opened" in reasons[1]
    assert "5 parts in its zip, over 4" in reasons[0]

    done = privacy.erase(store, glenbrae.config, ALAN, glenbrae.clock.now(),
                         apply=True)
    assert done.copies == 2 and done.unsearched == 2
    assert ("2 set-aside copies (2 of them not searchable in full"
            in done.summary())
    (left,) = setaside.kept_copies(store).values()
    assert b"stranger@elsewhere.example" in left.read_bytes()


def test_the_erasure_summary_counts_in_plurals_and_names_every_copy_kept(
        bot: Harness, tmp_path: Path) -> None:
    """Found trying the README as a new user: "2 message received", and
    the outbox and the demo's folder were not among the copies still
    held."""
    plant_ann_everywhere(bot)
    plan = privacy.erase(bot.bot.store, bot.config, ANN, bot.clock.now(),
                         apply=False)
    summary = plan.summary()
    assert f"{plan.messages} messages received" in summary
    assert f"{plan.events} history events" in summary
    assert "1 cluster," in summary and "1 set-aside copy" in summary
    elsewhere = " ".join(plan.elsewhere)
    assert str(bot.config.sending.path) in elsewhere
    assert "mailbot.json.1" in elsewhere
    assert access(bot)["elsewhere"] == plan.elsewhere

    # The demo's folder, where `mailbot demo` puts it, once it is there.
    config = dataclasses.replace(bot.config, path=tmp_path / "config.toml")
    demo = tmp_path / "data" / "demo"
    assert str(demo) not in " ".join(privacy.held_elsewhere(config))
    demo.mkdir(parents=True)
    assert str(demo) in " ".join(privacy.held_elsewhere(config))
    # Sending by SMTP, there is no outbox.
    smtp = dataclasses.replace(config, sending=dataclasses.replace(
        config.sending, kind="smtp"))
    assert str(config.sending.path) not in " ".join(
        privacy.held_elsewhere(smtp))


# ------------------------------------------------------------- retention

def test_a_copy_half_written_when_mailbot_was_killed_goes_at_the_next_sweep(
        bot: Harness) -> None:
    # Guards a bug: no record names such a file, so neither expiry nor
    # erasure ever removed the message it holds.
    bot.deliver(sample("09-newsletter"))
    bot.cycle()
    folder = setaside.folder(bot.bot.store)
    half = folder / "tmpk1lled.tmp"
    half.write_bytes(comment(ANN_FROM, "Half a message about Ann."))
    bot.clock.advance(days=1)
    bot.cycle()
    assert not half.exists()
    assert len(list(folder.glob("*.eml"))) == 1  # the real copy stays


def test_old_copies_go_after_keep_raw_days_through_the_sweep(
        bot: Harness) -> None:
    store = bot.bot.store
    inbox = bot.config.mailbox.path
    bot.deliver(sample("01-nomination-list"), sample("09-newsletter"))
    bot.cycle()
    # An answer to an address that bounces is suppressed, its text kept.
    bot.deliver(comment(f"Ewan Hart <{EWAN}>", "A comment from Balgonie."),
                sample("07-bounce"))
    bot.cycle()
    (suppressed,) = [o for o in store.all_outgoing()
                     if o["kind"] == "comment-receipt"]
    assert suppressed["status"] == "suppressed"
    assert suppressed["raw"]
    (aside,) = store.set_aside_messages()
    copy = setaside.copy_path(store, aside["key"])
    assert copy.exists()
    handled = list((inbox / ".Handled" / "cur").iterdir())
    assert handled and list((inbox / ".Set aside" / "cur").iterdir())

    # Not yet: a day short of the limit.
    bot.clock.advance(days=bot.config.privacy.keep_raw_days - 1)
    bot.cycle()
    assert copy.exists() and store.outgoing.get(suppressed.doc_id)["raw"]
    assert all(path.exists() for path in handled)

    bot.clock.advance(days=2)
    bot.cycle()
    assert not copy.exists()
    kept = store.outgoing.get(suppressed.doc_id)
    assert kept is not None and kept["raw"] == ""
    assert kept["status"] == "suppressed" and kept["to"] == [EWAN]
    assert list((inbox / ".Handled" / "cur").iterdir()) == []
    assert list((inbox / ".Set aside" / "cur").iterdir()) == []
    # The record of what happened stays; staff are told there is no copy.
    assert len(store.all_messages()) == 4
    assert "[no copy: cannot be replayed]" in setaside.listing(store)
    # Once a day at most.
    today = store.get_meta("retention_day")
    assert today == bot.clock.now().date().isoformat()
    assert privacy.retain_if_due(store, bot.config, bot.clock) is None


def test_maildir_expire_removes_only_old_mail_of_that_folder(
        tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    source = MaildirSource(maildir_config(inbox))
    cutoff = datetime(2026, 6, 1, tzinfo=UTC)
    old = cutoff - timedelta(days=1)
    paths = [put(inbox / ".Handled" / "cur", "1.a:2,S", raw_message(1)),
             put(inbox / ".Handled" / "new", "2.a", raw_message(2)),
             put(inbox / ".Handled" / "cur", "3.a:2,", raw_message(3)),
             put(inbox / "new", "4.a", raw_message(4))]
    for path in (paths[0], paths[1], paths[3]):
        os.utime(path, (old.timestamp(), old.timestamp()))
    os.utime(paths[2], (cutoff.timestamp() + 60,) * 2)

    assert source.expire("Handled", cutoff) == 2
    assert [p.exists() for p in paths] == [False, False, True, True]
    assert source.expire("Set aside", cutoff) == 0
    assert not (inbox / ".Set aside").exists()  # not made by looking
    source.close()


def test_imap_expire_deletes_old_mail_of_one_folder(
        dovecot: DovecotMailbox) -> None:
    imap = dovecot.client()
    try:
        imap.create_folder("Handled")
        imap.append("Handled", raw_message(1),
                    msg_time=datetime(2020, 3, 1, 9, 0, tzinfo=UTC))
        imap.append("Handled", raw_message(2),
                    msg_time=datetime(2023, 12, 30, 9, 0, tzinfo=UTC))
        imap.append("Handled", raw_message(3))
        imap.append("INBOX", raw_message(4),
                    msg_time=datetime(2020, 3, 1, 9, 0, tzinfo=UTC))
    finally:
        imap.logout()

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        assert source.expire("Handled", datetime(2024, 1, 1,
                                                 tzinfo=UTC)) == 2
        assert source.expire("Set aside", datetime(2024, 1, 1,
                                                   tzinfo=UTC)) == 0
        # The inbox is read as before.
        assert [m.data for m in source.fetch()] == [raw_message(4)]

    assert dovecot.folder_messages("Handled") == [raw_message(3)]
    assert dovecot.folder_messages("INBOX") == [raw_message(4)]
    assert "Set aside" not in dovecot.folders()


def test_the_sweep_empties_old_mail_from_the_imap_folders(
        dovecot: DovecotMailbox, tmp_path: Path) -> None:
    config = example_config(tmp_path, mailbox=dovecot.mailbox_config())
    bot = Harness(config, START, deliver=dovecot.deliver)
    try:
        bot.deliver(sample("01-nomination-list"), sample("09-newsletter"))
        bot.cycle()
        assert len(dovecot.folder_messages("Handled")) == 1
        assert len(dovecot.folder_messages("Set aside")) == 1

        bot.clock.advance(days=config.privacy.keep_raw_days + 1)
        bot.cycle()
        assert dovecot.folder_messages("Handled") == []
        assert dovecot.folder_messages("Set aside") == []
        assert len(bot.bot.store.all_messages()) == 2
    finally:
        bot.close()


# ------------------------------------------------------ the command line

def test_privacy_commands(home: Path) -> None:
    alan = "a.reid@glenbrae-ps.fife.example.sch.uk"
    deliver(home, "01-nomination-list")
    deliver(home, "04-comment-reply")
    mailbot(home, "run", "--once", at="2027-01-12 12:00:00")

    export = json.loads(mailbot(home, "privacy", "export",
                                alan.upper()).stdout)
    assert [s["record"]["contact_email"] for s in export["schools"]] == [alan]
    out = home / "alan.json"
    mailbot(home, "privacy", "export", alan, "--out", str(out))
    assert json.loads(out.read_text())["address"] == alan
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    plan = mailbot(home, "privacy", "erase", alan).stdout
    assert "Run again with --yes" in plan and "1 school" in plan
    assert json.loads(mailbot(home, "privacy", "export", alan).stdout)[
        "schools"]

    done = mailbot(home, "privacy", "erase", alan, "--yes").stdout
    assert "Erased" in done and "erased.invalid" in done
    # What erasure does not reach is named, the embedded outbox included.
    assert "Still held elsewhere:" in done
    assert "mailbot does not empty it" in done and "outbox" in done
    assert privacy.is_empty(json.loads(
        mailbot(home, "privacy", "export", alan).stdout))

    refused = mailbot(home, "privacy", "erase", "coordinator@dsa.example.org",
                      "--yes", check=False)
    assert refused.returncode == 1
    assert "staff" in refused.stderr and "config" in refused.stderr


def test_files_holding_personal_data_are_readable_by_their_owner_only(
        bot: Harness) -> None:
    """The journal and the outbox were once made readable by everyone on
    the machine (found trying the README as a new user)."""
    plant_ann_everywhere(bot)
    store_path = bot.config.store_path
    files = [store_path, Path(f"{store_path}.journal"),
             bot.config.security.key_file,
             *bot.config.sending.path.glob("*.eml"),
             *(p for p in store_path.parent.rglob("*")
               if "set-aside" in p.parts and p.is_file())]
    assert len(files) > 5
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & 0o077, f"{path} is {oct(mode)}"


def test_erasure_of_a_school_contact_survives_others_comments_in_its_history(
        bot: Harness) -> None:
    # Guards a bug: the history's comment lines were scrubbed into the
    # same variable as the school's own fields, so a school whose history
    # held another's comment kept its contact's address and name, and
    # gained the comment line's "detail" instead.
    plant_ann_everywhere(bot)
    store = bot.bot.store
    (kirkbrae,) = store.schools_with_contact(ANN)
    store.add_event(bot.clock.now(), "comment", school_id=kirkbrae.doc_id,
                    cluster_id=kirkbrae["cluster_id"],
                    detail="Our wifi in the hall keeps dropping.")
    store.commit()

    done = privacy.erase(store, bot.config, ANN, bot.clock.now(), apply=True)

    school = store.school(kirkbrae.doc_id)
    assert school["contact_email"] == done.placeholder
    assert school["contact_name"] == "[erased]"
    assert all("detail" not in s for s in store.all_schools())
    assert privacy.is_empty(access(bot))
