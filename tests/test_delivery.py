"""Sending queued mail through a real SMTP server on 127.0.0.1: each
message once, held back while the server is away, and a refused address
marked so that staff see it."""

from __future__ import annotations

import email
import email.utils
import errno
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from harness import ROOT, Harness, example_config, sample
from servers import SmtpServer

from mailbot import digest, setaside
from mailbot.clock import ManualClock
from mailbot.compose import Composer, Draft
from mailbot.delivery import deliver_pending
from mailbot.examples import contexts
from mailbot.senders import Envelope
from mailbot.store import Store, stamp

ALAN = "a.reid@glenbrae-ps.fife.example.sch.uk"


def smtp_harness(tmp_path: Path, smtp: SmtpServer) -> Harness:
    return Harness(example_config(tmp_path, sending=smtp.sending_config()),
                   "2027-01-12 09:35")


def statuses(bot: Harness) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in bot.bot.store.outgoing.all():
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    return counts


def test_mail_waits_while_the_server_is_down(tmp_path: Path,
                                             smtp_server: SmtpServer) -> None:
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.stop()
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert statuses(bot) == {"pending": 10}
    assert bot.cluster("Glenbrae")["status"] == "active"  # the record moved on

    smtp_server.start()
    bot.at("2027-01-12 09:40")
    bot.cycle()
    assert statuses(bot) == {"sent": 10}
    bot.cycle()
    ids = [r.content.split(b"Message-ID: ")[1][:60] for r in smtp_server.received]
    assert len(ids) == 10 == len(set(ids))
    bot.close()


def test_a_temporary_refusal_is_tried_again(tmp_path: Path,
                                            smtp_server: SmtpServer) -> None:
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.refuse(ALAN, "451 4.7.1 Greylisted, try again later")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    waiting = [o for o in bot.bot.store.outgoing.all() if o["status"] == "pending"]
    assert [o["to"] for o in waiting][0] == [ALAN]
    assert waiting[0]["attempts"] == 1

    del smtp_server.handler.rcpt_replies[ALAN]
    bot.at("2027-01-12 09:45")
    bot.cycle()
    assert statuses(bot) == {"sent": 10}
    assert sum(ALAN in r.rcpt_tos for r in smtp_server.received) == 1
    bot.close()


def test_a_permanent_refusal_marks_the_address(tmp_path: Path,
                                               smtp_server: SmtpServer) -> None:
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.refuse(ALAN, "550 5.1.1 No such user")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert statuses(bot) == {"sent": 9, "failed": 1}
    assert bot.school("Glenbrae Primary School")["undeliverable"] is False
    assert [a["email"] for a in bot.bot.store.undeliverable()] == [ALAN]

    # Later mail to that address is not even tried; staff see it.
    bot.at("2027-01-13 09:00")
    bot.cycle()
    digest = [r for r in smtp_server.received
              if r.rcpt_tos == ["coordinator@dsa.example.org"]][-1]
    assert ALAN.encode() in digest.content
    bot.close()


def test_a_refusal_by_rule_or_of_the_programmes_people_marks_no_address(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    # Guards a bug: a relay that denied relaying for an hour marked every
    # address it refused, staff included, and nothing reached them again.
    staff = "coordinator@dsa.example.org"
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.refuse(ALAN, "554 5.7.1 Relay access denied")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert statuses(bot) == {"sent": 9, "failed": 1}
    smtp_server.refuse(staff, "550 5.1.1 No such user")
    bot.at("2027-01-13 09:00")
    bot.cycle()  # the digest to staff is refused
    assert bot.bot.store.undeliverable() == []

    # The relay is put right: both are sent to again.
    smtp_server.handler.rcpt_replies.clear()
    bot.at("2027-01-13 10:00")
    bot.deliver(sample("04-comment-reply"))
    bot.cycle()
    assert [r.rcpt_tos for r in smtp_server.received][-1] == [ALAN]
    bot.at("2027-01-14 09:00")
    bot.cycle()
    assert [r.rcpt_tos for r in smtp_server.received][-1] == [staff]


def test_an_address_that_writes_in_after_a_bounce_is_written_to_again(
        tmp_path: Path) -> None:
    # Guards a bug: a bounce (forged, or from a mailbox full for a day)
    # silenced a school for good, whatever it wrote after.
    bot = Harness(example_config(tmp_path), "2027-01-12 09:35")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    bot.deliver(sample("07-bounce").replace(
        b"e.hart@balgonie-ps.fife.example.sch.uk", ALAN.encode()))
    bot.cycle()
    assert bot.bot.store.is_undeliverable(ALAN)
    assert bot.school("Glenbrae Primary School")["undeliverable"] is True

    bot.at("2027-01-12 11:00")
    bot.deliver(sample("04-comment-reply"))
    bot.cycle()
    assert not bot.bot.store.is_undeliverable(ALAN)
    school = bot.school("Glenbrae Primary School")
    assert school["undeliverable"] is False
    assert "deliverable" in [e["event"] for e in school["history"]]
    assert len(bot.sent("comment-receipt", ALAN)) == 1
    bot.close()


def test_replaying_old_mail_does_not_lift_a_newer_bounce(
        tmp_path: Path) -> None:
    # A message written before the bounce says nothing of the mailbox now.
    bot = Harness(example_config(tmp_path), "2027-01-12 09:35")
    bot.deliver(sample("04-comment-reply"))  # before Alan is known
    bot.cycle()
    (held,) = bot.export()["set_aside"]
    bot.at("2027-01-12 10:00")
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    bot.at("2027-01-13 10:00")
    bot.deliver(sample("07-bounce").replace(
        b"e.hart@balgonie-ps.fife.example.sch.uk", ALAN.encode()))
    bot.cycle()
    bot.at("2027-01-14 10:00")
    setaside.replay(bot.bot.pipeline, held["id"])
    assert bot.bot.store.is_undeliverable(ALAN)
    bot.close()


def test_a_message_refused_whole_is_failed_and_shown_to_staff(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    # Guards a bug found so: a 5xx to the message itself (no recipient
    # named) was recorded as sent, and the digest said nothing failed.
    bot = smtp_harness(tmp_path, smtp_server)
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert statuses(bot) == {"sent": 10}

    smtp_server.handler.data_reply = "554 5.6.0 Message rejected"
    bot.at("2027-01-12 10:00")
    bot.deliver(sample("04-comment-reply"))
    bot.cycle()
    assert statuses(bot) == {"sent": 10, "failed": 1}
    assert bot.bot.store.undeliverable() == []  # no address is to blame

    smtp_server.handler.data_reply = None
    bot.at("2027-01-13 09:00")
    bot.cycle()
    digest = [r for r in smtp_server.received
              if r.rcpt_tos == ["coordinator@dsa.example.org"]][-1]
    text = email.message_from_bytes(digest.content, policy=policy.default)
    body = text.get_body(("plain",))
    assert body is not None
    said = " ".join(body.get_content().split())  # lines are wrapped
    assert f"comment-receipt to {ALAN}" in said
    assert "554 5.6.0 Message rejected" in said


def test_mail_the_server_refuses_to_take_from_us_waits_and_is_shown(
        tmp_path: Path, smtp_server: SmtpServer) -> None:
    # Our sender address refused (a 5xx to MAIL FROM): every message would
    # be, so none is failed; they wait, and the digest says so.
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.handler.mail_reply = "553 5.7.1 Sender address rejected"
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    assert statuses(bot) == {"pending": 10}
    context = digest.context(bot.bot.store, bot.clock.now(), None)
    (waiting,) = [s["items"] for s in context["sections"]
                  if s["title"].startswith("Mail not sent yet")]
    # Those tried (each sending round stops at the first refusal).
    assert 1 <= len(waiting) < 10
    assert all("tried 1 times" in w and "553 5.7.1" in w for w in waiting)

    smtp_server.handler.mail_reply = None
    bot.at("2027-01-12 09:45")
    bot.cycle()
    assert statuses(bot) == {"sent": 10}
    assert len(smtp_server.received) == 10


def test_a_link_lost_after_the_message_was_handed_over_is_logged(
        tmp_path: Path, smtp_server: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    # Guards a gap found so: the server kept the message and dropped the
    # link before its reply; the message went again, as it must (it may
    # not have arrived), but the log did not say it may arrive twice.
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.handler.drop_after_data = True
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    (dropped,) = [o for o in bot.bot.store.outgoing.all()
                  if o["status"] == "pending"]
    unsigned = dropped["message_id"].split(".", 1)[1]  # the log redacts
    assert (f"{unsigned} to m.lindsay@glenbrae-hs.fife.example.sch.uk may "
            "have reached the server") in caplog.text
    assert "it may arrive twice" in caplog.text

    bot.at("2027-01-12 09:45")
    bot.cycle()
    assert statuses(bot) == {"sent": 10}
    ids = [str(email.message_from_bytes(r.content)["Message-ID"]).strip()
           for r in smtp_server.received]
    assert ids.count(dropped["message_id"]) == 2 and len(set(ids)) == 10
    bot.close()


def test_a_message_caught_mid_send_by_a_crash_is_sent_again_and_logged(
        tmp_path: Path, smtp_server: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    bot = smtp_harness(tmp_path, smtp_server)
    smtp_server.stop()
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    # As the record stands after a crash while the server had the message:
    store = bot.bot.store
    item = store.outgoing_by_key("welcome:1")
    assert item is not None
    store.update_outgoing(item.doc_id, {"status": "sending", "not_before": ""})
    store.commit()

    smtp_server.start()
    bot.at("2027-01-12 09:45")
    bot.cycle()
    assert statuses(bot) == {"sent": 10}
    warned = [r.getMessage() for r in caplog.records
              if "was being sent when mailbot stopped" in r.getMessage()]
    assert len(warned) == 1 and "welcome" in warned[0]
    bot.close()


def test_a_message_is_not_sent_again_while_the_disk_refuses_the_record(
        tmp_path: Path, smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards a bug: the server took the message, the disk then refused
    # the commit saying so, and the message went again at every cycle.
    bot = smtp_harness(tmp_path, smtp_server)
    bot.deliver(sample("01-nomination-list"))
    bot.cycle()
    storage = bot.bot.store._storage
    full = False
    real_append = storage.append

    def append(changes: object) -> None:
        if full:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(changes)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "append", append)
    sender = bot.bot.pipeline.sender
    real_send = sender.send

    filled = False

    def send(message: Envelope) -> None:
        nonlocal full, filled
        real_send(message)
        if ALAN in message.recipients and not filled:
            full = filled = True  # the disk fills just then

    monkeypatch.setattr(sender, "send", send)
    bot.at("2027-01-12 10:00")
    bot.deliver(sample("04-comment-reply"))
    for minute in range(5, 30, 5):
        bot.at(f"2027-01-12 10:{minute:02d}")
        bot.cycle()

    def copies() -> int:
        return sum(ALAN in r.rcpt_tos for r in smtp_server.received)

    assert copies() == 2  # the invitation and the receipt, once
    full = False  # room again: the one message that may go twice does
    bot.at("2027-01-12 10:30")
    bot.cycle()
    assert copies() == 3
    bot.at("2027-01-12 10:35")
    bot.cycle()
    assert copies() == 3
    assert statuses(bot) == {"sent": 11}
    bot.close()


# -- what is sent, without a server -----------------------------------------

class Recorder:
    """A Sender that keeps what it is given."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    def send(self, message: Envelope) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


QUEUED_AT = datetime(2027, 1, 12, 9, 35, tzinfo=UTC)
SENT_AT = datetime(2027, 1, 12, 10, 0, tzinfo=UTC)


def queued(tmp_path: Path, raw: str, to: list[str], cc: list[str]) -> Store:
    store = Store(tmp_path / "mailbot.json")
    store.queue_outgoing({
        "key": "welcome:1", "kind": "welcome", "to": to, "cc": cc,
        "subject": "Welcome", "message_id": "<w.1@dsa.example.org>",
        "status": "pending", "not_before": stamp(QUEUED_AT),
        "created_at": stamp(QUEUED_AT), "cluster_id": 1, "school_id": None,
        "raw": raw, "in_reply_to": ""})
    store.commit()
    return store


def built(to: tuple[str, ...], cc: tuple[str, ...]) -> str:
    composer = Composer(ROOT / "templates", "Digital Schools Programme",
                        "programme@dsa.example.org", {
                            "programme_name": "Digital Schools Awards",
                            "programme_address": "programme@dsa.example.org",
                            "sender_name": "Digital Schools Programme"})
    return composer.build(Draft(key="welcome:1", kind="welcome",
                                template="welcome", to=to, cc=cc,
                                context=contexts()["welcome"]), QUEUED_AT).raw


def test_the_message_goes_as_queued_with_a_new_date(tmp_path: Path) -> None:
    raw = built(("lead@x.example.org",), ("clerk@council.example.org",))
    store = queued(tmp_path, raw, ["lead@x.example.org"],
                   ["clerk@council.example.org"])
    sender = Recorder()

    assert deliver_pending(store, sender, ManualClock(SENT_AT), frozenset()) == 1

    (message,) = sender.sent
    assert message.recipients == ("lead@x.example.org",
                                  "clerk@council.example.org")
    assert message.message_id == "<w.1@dsa.example.org>"
    expected = raw.replace("Date: Tue, 12 Jan 2027 09:35:00 +0000",
                           "Date: Tue, 12 Jan 2027 10:00:00 +0000")
    assert expected != raw and message.data == expected.encode()
    assert store.outgoing_by_key("welcome:1")["status"] == "sent"  # type: ignore[index]


def test_an_address_that_bounces_is_left_out_of_envelope_and_headers(
        tmp_path: Path) -> None:
    to = ("lead@x.example.org", "gone@x.example.org")
    cc = ("clerk@council.example.org", "bounces@council.example.org")
    raw = built(to, cc)
    store = queued(tmp_path, raw, list(to), list(cc))
    for address in ("gone@x.example.org", "bounces@council.example.org"):
        store.mark_undeliverable(address, QUEUED_AT, "550", "<b@x>")
    sender = Recorder()

    deliver_pending(store, sender, ManualClock(SENT_AT), frozenset())

    (message,) = sender.sent
    assert message.recipients == ("lead@x.example.org",
                                  "clerk@council.example.org")
    parsed = email.message_from_bytes(message.data, policy=policy.default)
    assert parsed["To"] == "lead@x.example.org"
    assert parsed["Cc"] == "clerk@council.example.org"
    assert parsed["Date"] == "Tue, 12 Jan 2027 10:00:00 +0000"
    assert not parsed.defects
    # Everything but those three fields is as it was queued.
    def rest(text: str) -> list[str]:
        return [line for line in text.split("\r\n")
                if not line.startswith(("To:", "Cc:", "Date:"))]
    assert rest(message.data.decode()) == rest(raw)


def test_a_cc_left_empty_is_dropped(tmp_path: Path) -> None:
    raw = built(("lead@x.example.org",), ("gone@council.example.org",))
    store = queued(tmp_path, raw, ["lead@x.example.org"],
                   ["gone@council.example.org"])
    store.mark_undeliverable("gone@council.example.org", QUEUED_AT, "550", "<b@x>")
    sender = Recorder()

    deliver_pending(store, sender, ManualClock(SENT_AT), frozenset())

    (message,) = sender.sent
    assert message.recipients == ("lead@x.example.org",)
    assert b"\r\nCc:" not in message.data
    assert b"gone@council" not in message.data


def test_a_message_queued_by_an_older_mailbot_is_sent_too(
        tmp_path: Path) -> None:
    # As queued before: written by email.message, folded where it chose.
    old = EmailMessage(policy=SMTP)
    old["From"] = "Digital Schools Programme <programme@dsa.example.org>"
    old["To"] = "lead@x.example.org, " + ", ".join(
        f"school{n}@x.example.org" for n in range(8))
    old["Subject"] = "Welcome to the Cluster Initiative, Bun-sgoil Ghàidhlig"
    old["Date"] = email.utils.format_datetime(QUEUED_AT)
    old["Message-ID"] = "<w.1@dsa.example.org>"
    old.set_content("Welcome.\n")
    old.add_alternative("<p>Welcome.</p>\n", subtype="html")
    to = ["lead@x.example.org"] + [f"school{n}@x.example.org" for n in range(8)]
    store = queued(tmp_path, old.as_string(), to, [])
    store.mark_undeliverable("school3@x.example.org", QUEUED_AT, "550", "<b@x>")
    sender = Recorder()

    deliver_pending(store, sender, ManualClock(SENT_AT), frozenset())

    (message,) = sender.sent
    parsed = email.message_from_bytes(message.data, policy=policy.default)
    assert [a.addr_spec for a in parsed["To"].addresses] == \
        [a for a in to if a != "school3@x.example.org"]
    assert parsed["Subject"] == old["Subject"]
    assert parsed["Date"] == "Tue, 12 Jan 2027 10:00:00 +0000"
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "Welcome.\n"


def test_a_queued_message_with_no_text_is_failed_not_sent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = queued(tmp_path, "", ["lead@x.example.org"], [])
    sender = Recorder()

    assert deliver_pending(store, sender, ManualClock(SENT_AT), frozenset()) == 0

    assert sender.sent == []
    item = store.outgoing_by_key("welcome:1")
    assert item is not None and item["status"] == "failed"
    assert "cannot send" in caplog.text
