"""TLS to real servers on 127.0.0.1: Dovecot (TLS from the start, and
STARTTLS) and aiosmtpd (STARTTLS, and TLS from the start), each with a
certificate from a throwaway CA that mailbot trusts through `ca_file`.

Verification is never turned off: a certificate from a CA mailbot does not
trust, or one for another host name, is refused before the password is
sent, and so is a server that does not offer the STARTTLS asked for.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, example_config, sample
from servers import (
    HOST,
    DovecotMailbox,
    DovecotServer,
    SmtpServer,
    ThrowawayCA,
)

from mailbot import daemon
from mailbot.config import MailboxConfig
from mailbot.errors import ConfigError, TransientSendError
from mailbot.senders import Envelope
from mailbot.senders.smtp import SmtpSender
from mailbot.sources.imap import ImapSource

FROM = "programme@dsa.example.org"


def raw_message(n: int) -> bytes:
    return (f"From: school{n}@example.org\r\n"
            f"To: {FROM}\r\n"
            f"Subject: message {n}\r\n"
            f"Message-ID: <tls-{n}@example.org>\r\n"
            f"\r\n"
            f"Body of message {n}.\r\n").encode()


def tls_config(mailbox: DovecotMailbox, security: str,
               **overrides: Any) -> MailboxConfig:
    """The mailbox over "tls" (imaps port) or "starttls" (plain port)."""
    port = mailbox.imaps_port if security == "tls" else mailbox.port
    return mailbox.mailbox_config(security=security, port=port,
                                  reconnect_attempts=1, **overrides)


def login_lines(server: DovecotServer, user: str, expect: bool = True,
                over_tls: bool = False) -> list[str]:
    """Dovecot's log lines for logins of `user`, or only for those over
    TLS (the test helpers log in over plain text). Its log process writes
    them a moment later, so wait a little when one is expected."""
    log = server.root / "dovecot.log"
    deadline = time.monotonic() + (2 if expect else 0)
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = [line for line in text.splitlines()
                 if "Login:" in line and f"user=<{user}>" in line
                 and (not over_tls or ", TLS," in line)]
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.02)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    """A CA that mailbot is never told to trust."""
    return ThrowawayCA(tmp_path_factory.mktemp("other-ca"), "other")


@pytest.fixture(scope="module")
def wrong_name_server(
        start_tls_dovecot: Callable[..., DovecotServer]) -> DovecotServer:
    """A TLS Dovecot on 127.0.0.1 whose certificate, from the trusted CA,
    is for mail.example.org only."""
    return start_tls_dovecot("mail.example.org")


# ------------------------------------------------------------------- IMAP

@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_fetches_and_moves_over_tls(
        dovecot_tls: DovecotMailbox, test_ca: ThrowawayCA,
        security: str) -> None:
    dovecot_tls.deliver(raw_message(1))
    config = tls_config(dovecot_tls, security, ca_file=test_ca.ca_file)

    with closing(ImapSource(config)) as source:
        (message,) = source.fetch()
        source.mark_handled(message.key)
        source.flush()

    assert message.data == raw_message(1)
    assert dovecot_tls.folder_messages("Handled") == [raw_message(1)]
    # mailbot's login came over TLS (the helpers' own logins do not).
    assert login_lines(dovecot_tls.server, dovecot_tls.user, over_tls=True)


@pytest.mark.parametrize("security", ["tls", "starttls"])
@pytest.mark.parametrize("trusting", ["system", "other-ca"])
def test_imap_certificate_from_an_untrusted_ca_is_refused(
        dovecot_tls: DovecotMailbox, other_ca: ThrowawayCA, security: str,
        trusting: str) -> None:
    ca_file = other_ca.ca_file if trusting == "other-ca" else None
    dovecot_tls.deliver(raw_message(1))
    config = tls_config(dovecot_tls, security, ca_file=ca_file)

    with closing(ImapSource(config)) as source, \
            pytest.raises(ConfigError) as failure:
        list(source.fetch())

    error = failure.value
    assert error.key == "mailbox.ca_file"
    assert "not trusted" in error.problem
    assert "unable to get local issuer certificate" in error.problem
    assert f"{HOST}:{config.port}" in str(error)
    # Refused before the password went anywhere.
    assert login_lines(dovecot_tls.server, dovecot_tls.user,
                       expect=False, over_tls=True) == []
    assert dovecot_tls.folder_messages("INBOX") == [raw_message(1)]


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_imap_certificate_for_another_host_is_refused(
        wrong_name_server: DovecotServer, test_ca: ThrowawayCA,
        security: str) -> None:
    mailbox = wrong_name_server.new_mailbox()
    config = tls_config(mailbox, security, ca_file=test_ca.ca_file)

    with closing(ImapSource(config)) as source, \
            pytest.raises(ConfigError) as failure:
        list(source.fetch())

    error = failure.value
    assert error.key == "mailbox.host"
    assert "not for '127.0.0.1'" in error.problem
    assert "mismatch" in error.problem
    assert login_lines(wrong_name_server, mailbox.user, expect=False) == []


def test_imap_starttls_without_server_support_fails_without_plain_text(
        dovecot: DovecotMailbox, test_ca: ThrowawayCA) -> None:
    """The default Dovecot runs with `ssl = no`: no STARTTLS offered."""
    config = dovecot.mailbox_config(security="starttls",
                                    ca_file=test_ca.ca_file,
                                    reconnect_attempts=1)
    started = time.monotonic()

    with closing(ImapSource(config)) as source, \
            pytest.raises(ConfigError) as failure:
        list(source.fetch())

    assert failure.value.key == "mailbox.security"
    assert "does not offer STARTTLS" in failure.value.problem
    assert login_lines(dovecot.server, dovecot.user, expect=False) == []
    assert time.monotonic() - started < 2


def test_daemon_keeps_polling_through_a_refused_certificate(
        dovecot_tls: DovecotMailbox, test_ca: ThrowawayCA,
        other_ca: ThrowawayCA, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A refused certificate fails the poll like a refused login: logged,
    then tried again at the next poll, which works once the right CA is
    in place (the file is read at each connection)."""
    ca_file = tmp_path / "ca.pem"
    shutil.copy(other_ca.ca_file, ca_file)
    dovecot_tls.deliver(raw_message(1))
    config = example_config(
        tmp_path, mailbox=tls_config(dovecot_tls, "tls", ca_file=ca_file))
    bot = Harness(config, "2027-01-12 09:35")
    try:
        with caplog.at_level(logging.WARNING):
            assert daemon.poll(bot.bot) is False
        assert "mailbox.ca_file" in caplog.text
        assert "not trusted" in caplog.text
        assert dovecot_tls.folder_messages("INBOX") == [raw_message(1)]

        shutil.copy(test_ca.ca_file, ca_file)
        assert daemon.poll(bot.bot) is True
    finally:
        bot.close()
    assert dovecot_tls.folder_messages("INBOX") == []
    assert len(dovecot_tls.folder_messages("Set aside")
               + dovecot_tls.folder_messages("Handled")) == 1


# ------------------------------------------------------------------- SMTP

def tls_smtp(test_ca: ThrowawayCA, *names: str,
             implicit: bool = False) -> SmtpServer:
    server = SmtpServer(tls=test_ca.issue(*(names or (HOST,))),
                        implicit_tls=implicit)
    server.start()
    return server


@pytest.fixture
def smtp_starttls(test_ca: ThrowawayCA) -> Iterator[SmtpServer]:
    """aiosmtpd offering STARTTLS, and requiring it before MAIL FROM."""
    server = tls_smtp(test_ca)
    yield server
    server.remove()


@pytest.fixture
def smtp_tls(test_ca: ThrowawayCA) -> Iterator[SmtpServer]:
    """aiosmtpd speaking TLS from the first byte."""
    server = tls_smtp(test_ca, implicit=True)
    yield server
    server.remove()


def a_message() -> Envelope:
    data = (f"From: Awards <{FROM}>\r\n"
            "To: Head <head@school.example>\r\n"
            "Subject: Your nomination\r\n"
            "Message-ID: <tls@example.org>\r\n"
            "\r\n"
            "Thank you for the nomination.\r\n").encode()
    return Envelope(data, ("head@school.example",), "<tls@example.org>")


def test_smtp_sends_after_starttls_with_the_certificate_checked(
        smtp_starttls: SmtpServer, test_ca: ThrowawayCA) -> None:
    config = smtp_starttls.login_config(security="starttls",
                                        ca_file=test_ca.ca_file)
    with closing(SmtpSender(config, FROM)) as sender:
        sender.send(a_message())

    (received,) = smtp_starttls.received
    assert received.tls
    assert received.rcpt_tos == ["head@school.example"]
    assert smtp_starttls.logins == [smtp_starttls.username]


def test_smtp_sends_over_tls_from_the_start(
        smtp_tls: SmtpServer, test_ca: ThrowawayCA) -> None:
    config = smtp_tls.login_config(security="tls", ca_file=test_ca.ca_file)
    with closing(SmtpSender(config, FROM)) as sender:
        sender.send(a_message())

    (received,) = smtp_tls.received
    assert received.tls
    assert smtp_tls.logins == [smtp_tls.username]


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
@pytest.mark.parametrize("trusting", ["system", "other-ca"])
def test_smtp_certificate_from_an_untrusted_ca_is_refused(
        test_ca: ThrowawayCA, other_ca: ThrowawayCA, implicit: bool,
        trusting: str) -> None:
    server = tls_smtp(test_ca, implicit=implicit)
    try:
        config = server.login_config(
            security="tls" if implicit else "starttls",
            ca_file=other_ca.ca_file if trusting == "other-ca" else None)
        with closing(SmtpSender(config, FROM)) as sender, \
                pytest.raises(TransientSendError) as failure:
            sender.send(a_message())

        assert failure.value.server_down
        assert "certificate verify failed" in str(failure.value)
        assert server.received == [] and server.logins == []
    finally:
        server.remove()


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_smtp_certificate_for_another_host_is_refused(
        test_ca: ThrowawayCA, implicit: bool) -> None:
    server = tls_smtp(test_ca, "mail.example.org", implicit=implicit)
    try:
        config = server.login_config(
            security="tls" if implicit else "starttls",
            ca_file=test_ca.ca_file)
        with closing(SmtpSender(config, FROM)) as sender, \
                pytest.raises(TransientSendError) as failure:
            sender.send(a_message())

        assert "mismatch" in str(failure.value)
        assert server.received == [] and server.logins == []
    finally:
        server.remove()


def test_smtp_starttls_without_server_support_is_not_plain_text(
        smtp_server: SmtpServer, test_ca: ThrowawayCA) -> None:
    """The default aiosmtpd offers no STARTTLS."""
    config = smtp_server.login_config(security="starttls",
                                      ca_file=test_ca.ca_file)
    with closing(SmtpSender(config, FROM)) as sender, \
            pytest.raises(TransientSendError) as failure:
        sender.send(a_message())

    assert "STARTTLS" in str(failure.value)
    assert smtp_server.received == [] and smtp_server.logins == []


# ------------------------------------------------------------ end to end

def test_mail_in_over_imap_tls_answered_over_smtp_starttls(
        dovecot_tls: DovecotMailbox, smtp_starttls: SmtpServer,
        test_ca: ThrowawayCA, tmp_path: Path) -> None:
    """The daemon's own path: a nomination read over TLS, its
    acknowledgment sent after STARTTLS, both trusting only `ca_file`
    besides the system's CAs."""
    dovecot_tls.deliver(sample("01-nomination-list"))
    config = example_config(
        tmp_path,
        mailbox=tls_config(dovecot_tls, "tls", ca_file=test_ca.ca_file),
        sending=smtp_starttls.login_config(security="starttls",
                                           ca_file=test_ca.ca_file))
    bot = Harness(config, "2027-01-12 09:35")
    try:
        bot.cycle()
    finally:
        bot.close()

    assert dovecot_tls.folder_messages("Handled") == [
        sample("01-nomination-list")]
    assert smtp_starttls.received
    assert all(r.tls for r in smtp_starttls.received)
