"""Sending queued mail through a real SMTP server on 127.0.0.1: each
message once, held back while the server is away, and a refused address
marked so that staff see it."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import Harness, example_config, sample
from servers import SmtpServer

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
