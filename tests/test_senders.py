"""FileOutbox on real files and SmtpSender against a real aiosmtpd server."""

from __future__ import annotations

import email
import logging
import os
import time
from contextlib import closing
from email import policy
from pathlib import Path

import pytest
from servers import HOST, SmtpServer, free_port

from mailbot.config import Secret, SendingConfig
from mailbot.errors import PermanentSendError, TransientSendError
from mailbot.senders import Envelope
from mailbot.senders.outbox import FileOutbox
from mailbot.senders.smtp import SmtpSender

FROM = "awards@example.org"


def make_message(to: tuple[str, ...] = ("head@school.example",),
                 cc: tuple[str, ...] = (), message_id: str = "<1@example.org>",
                 recipients: tuple[str, ...] | None = None) -> Envelope:
    """A finished message as the composer writes one, and its envelope:
    its To and Cc unless `recipients` says otherwise."""
    head = [f"From: Awards <{FROM}>", f"To: {', '.join(to)}"]
    if cc:
        head.append(f"Cc: {', '.join(cc)}")
    head += ["Subject: Your nomination", f"Message-ID: {message_id}",
             "MIME-Version: 1.0", 'Content-Type: text/plain; charset="utf-8"',
             "Content-Transfer-Encoding: 7bit"]
    text = "\r\n".join([*head, "", "Thank you for the nomination.",
                         ".a line starting with a dot", ""])
    return Envelope(data=text.encode("utf-8"),
                    recipients=(*to, *cc) if recipients is None else recipients,
                    message_id=message_id)


# ------------------------------------------------------------------ outbox

def outbox_config(path: Path) -> SendingConfig:
    return SendingConfig(kind="file", path=path)


def test_outbox_writes_parseable_eml_files(tmp_path: Path) -> None:
    outbox = FileOutbox(outbox_config(tmp_path / "outbox"))

    message = make_message(cc=("clerk@council.example",))
    outbox.send(message)

    (written,) = (tmp_path / "outbox").iterdir()
    assert written.suffix == ".eml"
    assert (tmp_path / "outbox").stat().st_mode & 0o777 == 0o700
    data = written.read_bytes()
    assert data == message.data
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert parsed["Subject"] == "Your nomination"
    assert parsed["Cc"] == "clerk@council.example"
    body = parsed.get_body()
    assert body is not None and "Thank you" in body.get_content()


def test_outbox_names_are_unique_and_sort_by_time(tmp_path: Path) -> None:
    outbox = FileOutbox(outbox_config(tmp_path))

    for n in range(3):
        outbox.send(make_message(message_id=f"<1.{n}@example.org>"))
    outbox.send(make_message(message_id="<2@example.org>"))

    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 4
    assert all(name.endswith(".eml") for name in names)
    assert "2_example.org" in names[-1]


def test_outbox_writes_a_message_id_once(tmp_path: Path) -> None:
    # After a crash between writing a message and recording it as sent,
    # the same message comes again: it must not be sent twice.
    outbox = FileOutbox(outbox_config(tmp_path))
    for _ in range(3):
        outbox.send(make_message(message_id="<once@example.org>"))
    assert len(list(tmp_path.glob("*.eml"))) == 1


def test_outbox_writes_each_message_to_disk_before_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[list[str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(sorted(p.name for p in tmp_path.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    outbox = FileOutbox(outbox_config(tmp_path))
    outbox.send(make_message())

    # Synced while still under its hidden name.
    assert len(synced) == 1 and synced[0][0].startswith(".")
    assert [p.suffix for p in tmp_path.iterdir()] == [".eml"]


def test_outbox_clears_half_written_files_and_reports_a_full_disk(
        tmp_path: Path) -> None:
    (tmp_path / ".20270112T093500.000000Z-x.tmp").write_bytes(b"From: half")
    outbox = FileOutbox(outbox_config(tmp_path))
    assert list(tmp_path.iterdir()) == []

    tmp_path.rmdir()
    tmp_path.write_text("not a folder any more")
    with pytest.raises(TransientSendError) as failure:
        outbox.send(make_message())
    assert failure.value.server_down


@pytest.mark.parametrize("message_id", [
    "<../../etc/passwd>", "</abs/path@x>", "", "<a b\\c>", "<..>"])
def test_outbox_names_stay_inside_the_folder(
        tmp_path: Path, message_id: str) -> None:
    outbox = FileOutbox(outbox_config(tmp_path / "outbox"))

    outbox.send(make_message(message_id=message_id))

    (written,) = (tmp_path / "outbox").iterdir()
    assert written.parent == tmp_path / "outbox"
    assert written.name.endswith(".eml") and not written.name.startswith(".")
    assert list(tmp_path.iterdir()) == [tmp_path / "outbox"]


# -------------------------------------------------------------------- SMTP

def test_smtp_delivers_to_to_and_cc(smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        message = make_message(cc=("clerk@council.example",))
        sender.send(message)

    (got,) = smtp_server.received
    assert got.mail_from == FROM
    assert got.rcpt_tos == ["head@school.example", "clerk@council.example"]
    assert got.content == message.data  # the same bytes, dot and all
    parsed = email.message_from_bytes(got.content, policy=policy.default)
    assert parsed["Subject"] == "Your nomination"


def test_smtp_sends_to_the_envelope_not_the_headers(
        smtp_server: SmtpServer) -> None:
    # A blind copy: in the envelope, not in the message.
    message = make_message(recipients=("head@school.example",
                                       "Staff@Example.org", "staff@example.org",
                                       "not-an-address", ""))
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        sender.send(message)

    (got,) = smtp_server.received
    assert got.rcpt_tos == ["head@school.example", "Staff@Example.org"]
    assert b"staff@example.org" not in got.content.lower()
    assert got.content == message.data


def test_smtp_with_nobody_to_send_to_is_permanent(
        smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(PermanentSendError, match="no recipients"):
        sender.send(make_message(recipients=()))
    assert smtp_server.received == []


def test_smtp_logs_in(smtp_server: SmtpServer) -> None:
    smtp_server.require_auth()

    with closing(SmtpSender(smtp_server.login_config(), FROM)) as sender:
        sender.send(make_message())

    assert smtp_server.logins == [smtp_server.username]
    assert len(smtp_server.received) == 1


def test_smtp_wrong_password_is_transient_and_says_so(
        smtp_server: SmtpServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    smtp_server.require_auth()
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    config = smtp_server.login_config(password=Secret(file=wrong))

    with closing(SmtpSender(config, FROM)) as sender, \
            pytest.raises(TransientSendError, match="login") as failure:
        sender.send(make_message())

    assert "not-the-password" not in str(failure.value) + caplog.text
    assert smtp_server.received == []


def test_smtp_451_is_transient_and_nobody_gets_it(
        smtp_server: SmtpServer) -> None:
    smtp_server.refuse("clerk@council.example", "451 4.3.0 Try again later")

    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        with pytest.raises(TransientSendError) as failure:
            sender.send(make_message(cc=("clerk@council.example",)))
        # The connection carries the next message after the failed one.
        sender.send(make_message())

    assert failure.value.recipients == ["clerk@council.example"]
    assert "451" in str(failure.value)
    assert [r.rcpt_tos for r in smtp_server.received] == [
        ["head@school.example"]]
    assert smtp_server.connections == 1


def test_smtp_550_for_one_sends_to_the_others_then_fails(
        smtp_server: SmtpServer) -> None:
    smtp_server.refuse("clerk@council.example", "550 5.1.1 No such user")

    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(PermanentSendError) as failure:
        sender.send(make_message(cc=("clerk@council.example",)))

    assert failure.value.recipients == ["clerk@council.example"]
    assert "550" in str(failure.value)
    assert [r.rcpt_tos for r in smtp_server.received] == [
        ["head@school.example"]]


def test_smtp_non_ascii_address_is_refused_for_good(
        smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(PermanentSendError, match="non-ASCII") as failure:
        sender.send(make_message(cc=("j\u00f6rg@example.org",)))

    assert failure.value.recipients == ["j\u00f6rg@example.org"]
    assert [r.rcpt_tos for r in smtp_server.received] == [
        ["head@school.example"]]


def test_smtp_550_for_everyone_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.refuse("head@school.example", "550 5.1.1 No such user")

    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(PermanentSendError) as failure:
        sender.send(make_message())

    assert failure.value.recipients == ["head@school.example"]
    assert smtp_server.received == []


def test_smtp_refused_data_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.handler.data_reply = "554 5.6.0 Message rejected"

    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(PermanentSendError, match="554") as failure:
        sender.send(make_message())

    # The message was refused, not its recipients: no address is blamed.
    assert failure.value.recipients == []


def test_smtp_login_required_but_not_configured_is_transient(
        smtp_server: SmtpServer) -> None:
    smtp_server.require_auth()

    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(TransientSendError, match="530"):
        sender.send(make_message())


def test_smtp_server_down_is_transient() -> None:
    port = free_port()
    config = SendingConfig(kind="smtp", path=Path("unused"), host=HOST,
                           port=port, security="none", timeout_seconds=2)

    with closing(SmtpSender(config, FROM)) as sender, \
            pytest.raises(TransientSendError, match=f"{HOST}:{port}"):
        sender.send(make_message())


def test_smtp_silent_server_times_out_as_transient(
        smtp_server: SmtpServer, silent_port: int) -> None:
    config = smtp_server.sending_config(port=silent_port, timeout_seconds=0.3)
    started = time.monotonic()

    with closing(SmtpSender(config, FROM)) as sender, \
            pytest.raises(TransientSendError):
        sender.send(make_message())

    assert time.monotonic() - started < 3


def test_smtp_keeps_one_connection_for_many_messages(
        smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        for n in range(5):
            sender.send(make_message(message_id=f"<{n}@example.org>"))

    assert len(smtp_server.received) == 5
    assert smtp_server.connections == 1


def test_smtp_connects_again_after_the_server_dropped_it(
        smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        sender.send(make_message(message_id="<1@example.org>"))
        smtp_server.restart()
        sender.send(make_message(message_id="<2@example.org>"))

    assert len(smtp_server.received) == 2
    assert smtp_server.connections == 1  # counted since the restart


def test_smtp_connects_again_after_a_421_on_an_idle_connection(
        smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        sender.send(make_message(message_id="<1@example.org>"))
        smtp_server.handler.next_mail_reply = "421 4.4.2 Idle too long"
        sender.send(make_message(message_id="<2@example.org>"))

    assert len(smtp_server.received) == 2
    assert smtp_server.connections == 2


def test_smtp_421_on_a_new_connection_is_transient(
        smtp_server: SmtpServer) -> None:
    smtp_server.handler.next_mail_reply = "421 4.3.2 Shutting down"

    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender, \
            pytest.raises(TransientSendError, match="421"):
        sender.send(make_message())

    assert smtp_server.received == []


def test_smtp_stopped_server_is_transient_then_recovers(
        smtp_server: SmtpServer) -> None:
    with closing(SmtpSender(smtp_server.sending_config(), FROM)) as sender:
        sender.send(make_message())
        smtp_server.stop()
        with pytest.raises(TransientSendError):
            sender.send(make_message())
        smtp_server.start()
        sender.send(make_message())

    assert len(smtp_server.received) == 2


def test_smtp_close_quits_and_may_be_repeated(smtp_server: SmtpServer) -> None:
    sender = SmtpSender(smtp_server.sending_config(), FROM)
    sender.send(make_message())

    sender.close()
    sender.close()

    assert len(smtp_server.received) == 1


def test_smtp_security_none_on_a_remote_host_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    config = SendingConfig(kind="smtp", path=Path("unused"),
                           host="smtp.example.org", port=25, security="none")

    with caplog.at_level(logging.WARNING):
        SmtpSender(config, FROM).close()

    assert "unencrypted" in caplog.text
