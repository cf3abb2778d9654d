"""Bad input never crashes a poll and never loses a message: each one is
handled or set aside with a reason, and the poll goes on."""

from __future__ import annotations

import shutil
from email.message import EmailMessage
from pathlib import Path

from harness import ROOT, Harness, example_config, make_mail, sample
from servers import SmtpServer

BAD = {
    "empty": b"",
    "binary": bytes(range(256)) * 40,
    "no headers": b"just some words\r\nand more words\r\n",
    "no sender": b"Subject: hello\r\nMessage-ID: <x1@e.org>\r\n\r\nHello\r\n",
    "unknown charset": (b"From: a@b.example.org\r\nSubject: =?x-klingon?q?Qapla?=\r\n"
                        b"Message-ID: <x2@e.org>\r\nContent-Type: text/plain; "
                        b"charset=x-klingon\r\n\r\n\xff\xfe\xfd\r\n"),
    "broken base64": (b"From: a@b.example.org\r\nSubject: list\r\n"
                      b"Message-ID: <x3@e.org>\r\nMIME-Version: 1.0\r\n"
                      b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
                      b"--XX\r\nContent-Type: text/plain\r\n\r\nCluster name: "
                      b"Broken Cluster\r\n--XX\r\nContent-Type: application/vnd."
                      b"openxmlformats-officedocument.spreadsheetml.sheet; "
                      b"name=schools.xlsx\r\nContent-Transfer-Encoding: base64\r\n"
                      b"\r\n!!!not base64 at all!!!\r\n--XX--\r\n"),
    "huge header": (b"From: a@b.example.org\r\nSubject: " + b"x" * 200_000 +
                    b"\r\nMessage-ID: <x4@e.org>\r\n\r\nbody\r\n"),
    "endless boundary": (b"From: a@b.example.org\r\nMessage-ID: <x5@e.org>\r\n"
                         b"Content-Type: multipart/mixed; boundary=Q\r\n\r\n"
                         + b"--Q\r\nContent-Type: multipart/mixed; boundary=Q\r\n\r\n"
                         * 200),
}


def test_each_bad_message_is_kept_and_the_poll_goes_on(tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    for raw in BAD.values():
        bot.deliver(raw)
    bot.deliver(sample("01-nomination-list"))  # good mail after the bad
    bot.cycle()

    inbox = tmp_path / "inbox"
    assert list((inbox / "new").iterdir()) == []
    kept = list((inbox / ".Handled" / "cur").iterdir()) + \
        list((inbox / ".Set aside" / "cur").iterdir())
    assert len(kept) == len(BAD) + 1
    assert {p.read_bytes() for p in kept} >= set(BAD.values())

    records = bot.bot.store.messages.all()
    assert len(records) == len(BAD) + 1
    assert all(r["reason"] for r in records)
    assert bot.cluster("Glenbrae")["status"] == "active"
    bot.close()


def test_an_error_mid_message_sets_it_aside_and_undoes_its_changes(
        tmp_path: Path) -> None:
    # A template that fails only for this one comment (so it passes the
    # start-up check): the comment is being stored when the receipt
    # cannot be built.
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    receipt = templates / "comment-receipt.txt"
    receipt.write_text(receipt.read_text()
                       + '{% if "2019" in comment %}{{ 1 // 0 }}{% endif %}\n')
    bot = Harness(example_config(tmp_path, templates_dir=templates),
                  "2027-01-12 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()

    bot.deliver(sample("04-comment-reply"),
                make_mail("Fiona Baird <headteacher@kirkton-ps.fife.example.sch.uk>",
                          "Done", "We have completed the self-review."))
    bot.cycle()

    assert bot.school("Glenbrae Primary School")["comments"] == []
    aside = bot.export()["set_aside"]
    assert len(aside) == 1
    assert aside[0]["from"] == "a.reid@glenbrae-ps.fife.example.sch.uk"
    assert "ZeroDivisionError" in aside[0]["reason"]
    # The next message was handled as usual.
    assert bot.school("Kirkton Primary School")["status"] == "self_review_complete"
    bot.close()


INJECTION = "=?utf-8?q?=0D=0AReply-To=3A_attacker=40evil=2Eexample=0D=0AX-Pad=3A?="


def injected_nomination() -> bytes:
    message = EmailMessage()
    message["From"] = "Lee Lead <lee@inj.example.sch.uk>"
    message["To"] = "programme@dsa.example.org"
    message["Subject"] = "Cluster nomination"
    message["Message-ID"] = "<inj-1@inj.example.sch.uk>"
    message.set_content(f"Cluster name: Body {INJECTION} Cluster\n"
                        "Local authority: Fife\n"
                        "Lead contact: Lee Lead, lee@inj.example.sch.uk\n")
    message.add_attachment(
        "School,Phase,Contact,Email\n"
        f"Victim {INJECTION} Primary School,primary,Vic Tim,"
        "head@victim-ps.example.sch.uk\n", subtype="csv", filename="s.csv")
    return message.as_bytes()


def header_names(raw: bytes) -> list[str]:
    block = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    return [line.split(":", 1)[0].lower() for line in block.split("\r\n")
            if line and not line[0].isspace()]


def test_encoded_line_breaks_in_names_never_become_headers(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    # Guards a past bug: an encoded-word holding CR LF in a cluster or
    # school name came out as a Reply-To header on every message.
    on_file = Harness(example_config(tmp_path / "file"), "2027-01-12 10:00")
    on_smtp = Harness(example_config(tmp_path / "smtp",
                                     sending=smtp_server.sending_config()),
                      "2027-01-12 10:00")
    for bot in (on_file, on_smtp):
        bot.deliver(injected_nomination())
        bot.cycle()
        bot.close()
    written = [p.read_bytes() for p in (tmp_path / "file" / "outbox").glob("*.eml")]
    wire = [r.content for r in smtp_server.received]
    assert len(written) == len(wire) >= 5
    for raw in written + wire:
        names = header_names(raw)
        assert "reply-to" not in names and "x-pad" not in names
        assert names.count("subject") == 1


def test_a_message_whose_record_cannot_be_written_stays_in_the_inbox(
        tmp_path: Path) -> None:
    # Guards a past bug: the failed write stayed in memory, and the next
    # poll moved the message on as if it had been recorded.
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    record = tmp_path / "mailbot.json.journal"
    record.unlink()
    record.mkdir()  # no commit can be written any more
    bot.deliver(sample("01-nomination-list"))
    for _ in range(2):
        bot.cycle()
        assert len(list((tmp_path / "inbox" / "new").iterdir())) == 1
        assert bot.sent() == []

    record.rmdir()
    bot.cycle()
    assert list((tmp_path / "inbox" / "new").iterdir()) == []
    assert bot.cluster("Glenbrae")["status"] == "active"
    assert len(bot.sent("invitation")) == 5
    bot.close()


ROBOT = "Alan Reid <a.reid@glenbrae-ps.fife.example.sch.uk>"


def robot_reply(to: EmailMessage, n: int) -> bytes:
    # An auto-responder that sends no RFC 3834 headers at all.
    return make_mail(ROBOT, f"Re: {to['Subject']}",
                     f"Thank you for your email (ticket {n}). This mailbox is "
                     "monitored during school hours.",
                     In_Reply_To=str(to["Message-ID"]))


def test_a_robot_without_loop_headers_cannot_keep_mailbot_talking(
        tmp_path: Path) -> None:
    # Guards a past bug: each robot reply was a new comment with its own
    # receipt, which the robot answered again, for ever.
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    last = bot.sent("invitation", "a.reid@glenbrae-ps.fife.example.sch.uk")[0]
    for n in range(12):
        bot.at(f"2027-01-12 10:{n + 1:02d}")
        bot.deliver(robot_reply(last, n))
        bot.cycle()
        receipts = bot.sent("comment-receipt")
        last = receipts[-1] if receipts else last
    assert len(bot.sent("comment-receipt")) == 5  # the daily limit in rules/
    digest_day = bot.sent("digest")
    bot.at("2027-01-13 08:00")
    bot.cycle()
    assert len(bot.sent("digest")) == len(digest_day) + 1
    text = bot.sent("digest")[-1].get_body(("plain",)).get_content()
    assert "a.reid@glenbrae-ps.fife.example.sch.uk" in text.split(
        "not answered again")[1]
    bot.close()


def test_the_same_text_again_is_not_a_new_comment(tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    for _ in range(3):
        bot.deliver(make_mail(ROBOT, "Re: your message",
                              "Thank you for your email. I am away."))
        bot.cycle()
    assert len(bot.school("Glenbrae Primary School")["comments"]) == 1
    assert len(bot.sent("comment-receipt")) == 1
    bot.close()


def test_a_reply_that_adds_nothing_is_not_asked_again(tmp_path: Path) -> None:
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(sample("10-nomination-incomplete"))
    bot.cycle()
    request = bot.sent("missing-information")[0]
    for n in range(3):
        bot.deliver(make_mail("Gordon Fleming <gfleming@burnside-ps.example.sch.uk>",
                              f"Re: {request['Subject']}",
                              f"Thank you for your email ({n}).",
                              In_Reply_To=str(request["Message-ID"])))
        bot.cycle()
    assert len(bot.sent("missing-information")) == 1
    assert len(bot.export()["set_aside"]) == 3
    bot.close()


def test_a_nomination_of_hundreds_of_schools_waits_for_a_person(
        tmp_path: Path) -> None:
    rows = "\n".join(f"{n}. School {n} Primary School (primary) - Pat Kerr - "
                     f"head{n}@school{n}.example.sch.uk" for n in range(1, 301))
    bot = Harness(example_config(tmp_path), "2027-01-12 10:00")
    bot.deliver(make_mail("Lee Lead <lee@lead.example.sch.uk>",
                          "Cluster nomination - Huge Cluster",
                          f"Cluster name: Huge Cluster\nLocal authority: Fife\n"
                          f"\nSchools:\n{rows}\n"))
    bot.cycle()
    assert bot.export()["clusters"] == []
    assert bot.sent("invitation") == []
    (aside,) = bot.export()["set_aside"]
    assert "300 schools" in aside["reason"]
    bot.close()
