"""Between polls: waiting for new mail (IMAP IDLE, a Maildir's new/), a
daemon that stops at once on SIGTERM, and staff alerted once when the
mailbox stays out of reach."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from harness import ROOT, Harness, body, example_config, make_mail
from servers import PASSWORD, DovecotMailbox, DovecotServer
from test_sources import maildir_config, put, raw_message

from mailbot import daemon, digest
from mailbot.config import Secret
from mailbot.sources.imap import ImapSource
from mailbot.sources.maildir import MaildirSource

STAFF = "coordinator@dsa.example.org"


def timed(step: Callable[[], None]) -> float:
    started = time.monotonic()
    step()
    return time.monotonic() - started


def later(seconds: float, action: Callable[[], object]) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


# -------------------------------------------------------------- Maildir

def test_maildir_wait_ends_on_a_delivery_or_an_interrupt(
        tmp_path: Path) -> None:
    source = MaildirSource(maildir_config(tmp_path / "inbox"))
    list(source.fetch())

    later(0.3, lambda: put(tmp_path / "inbox" / "new", "1.M1.host",
                           raw_message(1)))
    assert timed(lambda: source.wait(30)) < 10

    list(source.fetch())
    later(0.3, source.interrupt)
    assert timed(lambda: source.wait(30)) < 10
    source.close()


# ----------------------------------------------------------------- IDLE

def test_imap_wait_idles_renews_and_ends_on_new_mail(
        dovecot: DovecotMailbox, caplog: pytest.LogCaptureFixture) -> None:
    config = dovecot.mailbox_config(idle_renew_seconds=0.4)
    with closing(ImapSource(config)) as source, \
            caplog.at_level(logging.DEBUG, logger="mailbot"):
        list(source.fetch())
        source.wait(1.0)
        assert caplog.text.count("IDLE for up to") >= 3  # renewed

        later(0.3, lambda: dovecot.deliver(raw_message(1)))
        assert timed(lambda: source.wait(30)) < 10

        # Mail that came between the poll and the wait ends it at once.
        dovecot.deliver(raw_message(2))
        assert timed(lambda: source.wait(30)) < 10

        # An interrupt ends IDLE cleanly: the connection goes on working.
        later(0.3, source.interrupt)
        assert timed(lambda: source.wait(30)) < 10
        assert len(list(source.fetch())) == 2


def test_imap_wait_ends_when_the_connection_drops(
        dovecot: DovecotMailbox) -> None:
    with closing(ImapSource(dovecot.mailbox_config())) as source:
        list(source.fetch())
        later(0.3, dovecot.kick)
        assert timed(lambda: source.wait(30)) < 10
        dovecot.deliver(raw_message(1))
        assert len(list(source.fetch())) == 1


def test_imap_wait_pauses_only_briefly_after_quick_drops(
        dovecot: DovecotMailbox) -> None:
    # Guards a gap found so: after two connections dropped at once (two
    # quick restarts of the server), IDLE was given up for the rest of the
    # wait, and new mail waited for the next poll.
    with closing(ImapSource(dovecot.mailbox_config())) as source:
        list(source.fetch())
        for _ in range(2):
            later(0.3, dovecot.kick)
            assert timed(lambda: source.wait(60)) < 10
        dovecot.deliver(raw_message(1))
        assert len(list(source.fetch())) == 1


@pytest.fixture(scope="module")
def idle_less_dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer(capability="IMAP4rev1 LITERAL+ MOVE UIDPLUS")
    server.start()
    yield server
    server.remove()


def test_imap_wait_sleeps_on_a_server_without_idle(
        idle_less_dovecot: DovecotServer) -> None:
    mailbox = idle_less_dovecot.new_mailbox()
    with closing(ImapSource(mailbox.mailbox_config())) as source:
        list(source.fetch())
        assert timed(lambda: source.wait(0.5)) >= 0.5
        later(0.3, source.interrupt)
        assert timed(lambda: source.wait(30)) < 10


def test_the_password_stays_out_of_the_protocol_trace(
        dovecot: DovecotMailbox, caplog: pytest.LogCaptureFixture) -> None:
    dovecot.deliver(raw_message(1))
    with closing(ImapSource(dovecot.mailbox_config())) as source, \
            caplog.at_level(logging.DEBUG):
        list(source.fetch())
        source.wait(0.2)

    assert "LOGIN" in caplog.text and "IDLE" in caplog.text
    assert PASSWORD not in caplog.text


# --------------------------------------------------------------- daemon

@pytest.fixture
def imap_home(tmp_path: Path, dovecot: DovecotMailbox) -> Path:
    """A folder with config.toml reading the test Dovecot, polling only
    every five minutes: mail read sooner came by IDLE."""
    config = (ROOT / "config.example.toml").read_text()
    config = config.replace('kind = "maildir"', "\n".join([
        'kind = "imap"', f'host = "{dovecot.host}"', f"port = {dovecot.port}",
        'security = "none"', f'username = "{dovecot.user}"',
        f'password_file = "{dovecot.password_file}"']))
    config = config.replace("poll_seconds = 60", "poll_seconds = 300")
    (tmp_path / "config.toml").write_text(config)
    for sub in ("rules", "templates"):
        os.symlink(ROOT / sub, tmp_path / sub)
    return tmp_path


def test_the_daemon_reads_new_mail_at_once_and_stops_on_sigterm(
        imap_home: Path, dovecot: DovecotMailbox) -> None:
    log_path = imap_home / "mailbot.log"
    with open(log_path, "w") as log_file:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--verbose", "run"],
            cwd=imap_home, stderr=log_file)
    try:
        def waits() -> int:
            return log_path.read_text().count("IDLE for up to")

        assert eventually(lambda: waits() >= 1), log_path.read_text()
        dovecot.deliver(make_mail("Alan Reid <alan@school.example.org>",
                                  "Out of office", "Away today.",
                                  Auto_Submitted="auto-replied"))
        assert eventually(lambda: len(dovecot.folder_messages("Handled"))
                          == 1), log_path.read_text()
        assert eventually(lambda: waits() >= 2), log_path.read_text()

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()

    log = log_path.read_text()
    assert "received SIGTERM" in log and "mailbot stopped" in log
    assert "REDACTED" in log and PASSWORD not in log
    assert dovecot.folder_messages("INBOX") == []


def test_the_loop_reads_a_maildir_delivery_within_seconds_and_stops(
        tmp_path: Path) -> None:
    config = example_config(tmp_path)
    config = dataclasses.replace(config, schedule=dataclasses.replace(
        config.schedule, poll_seconds=300))
    bot = Harness(config, "2027-01-12 09:35")
    inbox = config.mailbox.path / "new"
    loop = daemon.Daemon(bot.bot)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        for n in range(2):
            bot.deliver(make_mail(f"Person {n} <p{n}@school.example.org>",
                                  "Out of office", "Away today.",
                                  Auto_Submitted="auto-replied"))
            assert eventually(lambda: not any(inbox.iterdir()))
    finally:
        loop.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
    bot.close()
    assert len(list((config.mailbox.path / ".Handled" / "cur").iterdir())) == 2


# --------------------------------------------------------------- alerts

def test_staff_are_alerted_once_when_polling_keeps_failing(
        dovecot: DovecotMailbox, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    config = example_config(
        tmp_path, mailbox=dovecot.mailbox_config(reconnect_attempts=1))
    bot = Harness(config, "2027-01-12 09:00")
    bot.cycle()
    store = bot.bot.store
    last_poll = store.get_meta("last_poll")

    dovecot.stop()
    with caplog.at_level(logging.INFO, logger="mailbot"):
        for moment in ("09:05", "09:20", "09:35"):
            bot.at(f"2027-01-12 {moment}")
            bot.cycle()
        assert bot.sent(kind="alert") == []

        for moment in ("09:36", "10:30", "13:00"):
            bot.at(f"2027-01-12 {moment}")
            bot.cycle()
    (alert,) = bot.sent(kind="alert", to=STAFF)
    text = body(alert)
    assert "12 January 2027 at 09:05" in text and "31 minutes" in text
    assert str(dovecot.port) in text
    assert any(r.levelname == "ERROR" and "alerting" in r.getMessage()
               for r in caplog.records)
    assert store.get_meta("last_poll") == last_poll
    shown = digest.context(store, bot.clock.now(), None)
    assert shown["last_poll"] == last_poll and shown["poll_failing_since"]

    dovecot.server.start()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mailbot"):
        bot.at("2027-01-12 13:05")
        bot.cycle()
    assert "polling works again after failing for 240 minutes" in caplog.text
    assert store.get_meta("poll_failing_since") is None

    # A new run of failures is a new alert.
    dovecot.stop()
    for moment in ("14:00", "14:40"):
        bot.at(f"2027-01-12 {moment}")
        bot.cycle()
    assert len(bot.sent(kind="alert")) == 2
    bot.close()


def test_a_failing_poll_of_a_missing_maildir_alerts_too(
        tmp_path: Path) -> None:
    config = example_config(tmp_path)
    bot = Harness(config, "2027-01-12 09:00")
    shutil.rmtree(config.mailbox.path)
    (config.mailbox.path).write_text("not a folder")
    for moment in ("09:01", "09:40"):
        bot.at(f"2027-01-12 {moment}")
        bot.cycle()
    (alert,) = bot.sent(kind="alert")
    assert str(config.mailbox.path) in body(alert)
    bot.close()


def test_a_poll_failing_on_a_setting_logs_the_setting_not_a_traceback(
        dovecot: DovecotMailbox, tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A password variable not set once logged a whole traceback at every
    poll (found trying the README as a new user)."""
    monkeypatch.delenv("MAILBOT_TEST_NO_SUCH_PASSWORD", raising=False)
    mailbox = dovecot.mailbox_config()
    mailbox = dataclasses.replace(mailbox, password=Secret(
        env="MAILBOT_TEST_NO_SUCH_PASSWORD", config="config.toml",
        key="mailbox.password_env"))
    bot = Harness(example_config(tmp_path, mailbox=mailbox), "2027-01-12 09:00")
    with caplog.at_level(logging.INFO, logger="mailbot"):
        assert daemon.cycle(bot.bot) is False
    (error,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert error.getMessage() == (
        "poll failed until the configuration is fixed: config.toml: "
        "mailbox.password_env: the environment variable "
        "MAILBOT_TEST_NO_SUCH_PASSWORD is not set")
    assert error.exc_info is None
    bot.close()
