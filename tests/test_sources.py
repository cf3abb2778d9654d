"""MaildirSource on real files and ImapSource against a real Dovecot."""

from __future__ import annotations

import errno
import logging
import mailbox
import os
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from servers import HOST, DovecotMailbox, DovecotServer, free_port

from mailbot import mail
from mailbot.config import MailboxConfig, Secret
from mailbot.errors import ConfigError, TransientError
from mailbot.sources import imap as imap_module
from mailbot.sources import maildir as maildir_module
from mailbot.sources.imap import ImapSource
from mailbot.sources.maildir import MaildirSource


def raw_message(n: int, subject: str = "") -> bytes:
    return (f"From: school{n}@example.org\r\n"
            f"To: awards@example.org\r\n"
            f"Subject: {subject or f'message {n}'}\r\n"
            f"Message-ID: <{n}@example.org>\r\n"
            f"\r\n"
            f"Body of message {n}.\r\n").encode()


# ---------------------------------------------------------------- Maildir

def maildir_config(path: Path) -> MailboxConfig:
    return MailboxConfig(kind="maildir", path=path, handled_folder="Handled",
                         set_aside_folder="Set aside")


def put(path: Path, name: str, data: bytes) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_bytes(data)
    return path / name


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    return tmp_path / "inbox"


def test_maildir_is_created_when_missing_readable_by_its_owner_only(
        inbox: Path) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1))
    source.mark_handled("maildir:1700000100.M1P1.host")

    made = [inbox, *(inbox / sub for sub in ("new", "cur", "tmp")),
            inbox / ".Handled", inbox / ".Handled" / "cur"]
    assert all(path.is_dir() for path in made)
    assert {path.stat().st_mode & 0o777 for path in made} == {0o700}


def test_maildir_fetch_reads_new_and_cur_oldest_first(inbox: Path) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000300.M1P1.host", raw_message(3))
    put(inbox / "cur", "1700000100.M1P1.host:2,S", raw_message(1))
    put(inbox / "new", "1700000200.M1P1.host", raw_message(2))
    put(inbox / "new", ".hidden", raw_message(9))
    put(inbox / ".Handled" / "cur", "1700000000.M1P1.host:2,", raw_message(0))

    fetched = list(source.fetch())

    assert [m.key for m in fetched] == [
        "maildir:1700000100.M1P1.host",
        "maildir:1700000200.M1P1.host",
        "maildir:1700000300.M1P1.host",
    ]
    assert [m.data for m in fetched] == [raw_message(n) for n in (1, 2, 3)]


def test_maildir_mark_handled_moves_into_a_new_folder(inbox: Path) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1))
    (message,) = source.fetch()

    source.mark_handled(message.key)

    moved = inbox / ".Handled" / "cur" / "1700000100.M1P1.host:2,"
    assert moved.read_bytes() == raw_message(1)
    assert (inbox / ".Handled" / "maildirfolder").exists()
    assert list(source.fetch()) == []
    # A Maildir++ reader sees it in the folder.
    folder = mailbox.Maildir(inbox, create=False).get_folder("Handled")
    assert [m.get("Subject") for m in folder] == ["message 1"]


def test_maildir_set_aside_keeps_flags_and_allows_spaces(inbox: Path) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "cur", "1700000100.M1P1.host:2,RS", raw_message(1))

    source.set_aside("maildir:1700000100.M1P1.host")

    moved = inbox / ".Set aside" / "cur" / "1700000100.M1P1.host:2,RS"
    assert moved.read_bytes() == raw_message(1)
    assert [m.key for m in source.list_folder("Set aside")] == [
        "maildir:1700000100.M1P1.host"]


def test_maildir_a_file_in_new_with_flags_is_moved_with_them(
        inbox: Path) -> None:
    # Not how a delivery should name it, but read all the same: it must
    # not stay in the inbox, "no longer there" at every poll.
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000100.M1P1.host:2,S", raw_message(1))
    (message,) = source.fetch()

    source.mark_handled(message.key)

    moved = inbox / ".Handled" / "cur" / "1700000100.M1P1.host:2,S"
    assert moved.read_bytes() == raw_message(1)
    assert list(source.fetch()) == []


def test_maildir_restore_brings_a_message_back(inbox: Path) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1))
    source.set_aside("maildir:1700000100.M1P1.host")

    source.restore("maildir:1700000100.M1P1.host", "Set aside")

    assert [m.data for m in source.fetch()] == [raw_message(1)]
    assert list(source.list_folder("Set aside")) == []


def test_maildir_vanished_file_is_a_warning(
        inbox: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1)).unlink()

    with caplog.at_level(logging.WARNING):
        source.mark_handled("maildir:1700000100.M1P1.host")

    assert "no longer in" in caplog.text
    assert list((inbox / ".Handled" / "cur").iterdir()) == []


def test_maildir_a_message_too_large_is_not_read_and_the_rest_are(
        inbox: Path) -> None:
    # Guards a bug found so: a file was read whole before its size was
    # looked at, so a 2 GB one cost 2 GB of memory on every poll.
    source = MaildirSource(maildir_config(inbox))
    huge = put(inbox / "new", "1700000100.M1P1.host", b"")
    os.truncate(huge, mail.MAX_MESSAGE_BYTES + 1)  # sparse: no disk used
    put(inbox / "new", "1700000200.M1P1.host", raw_message(2))

    first, second = source.fetch()

    assert (first.key, first.data) == ("maildir:1700000100.M1P1.host", b"")
    assert f"message of {mail.MAX_MESSAGE_BYTES + 1:,} bytes" in first.unreadable
    assert (second.data, second.unreadable) == (raw_message(2), "")


def test_maildir_a_file_that_cannot_be_read_holds_up_no_other(
        inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards a bug found so: one file without read permission failed every
    # poll, and the mail behind it waited for ever. The suite runs as
    # root, whom permissions do not stop, so the refusal is made here.
    source = MaildirSource(maildir_config(inbox))
    locked = put(inbox / "new", "1700000100.M1P1.host", raw_message(1))
    put(inbox / "new", "1700000200.M1P1.host", raw_message(2))
    read_file = maildir_module._read_file

    def refuse(path: str) -> bytes:
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return read_file(path)

    monkeypatch.setattr(maildir_module, "_read_file", refuse)
    first, second = source.fetch()

    assert first.unreadable == (f"the file of {len(raw_message(1))} bytes "
                                "cannot be read: Permission denied")
    assert second.data == raw_message(2)
    source.set_aside(first.key)  # a rename needs no read permission
    assert [p.name for p in (inbox / ".Set aside" / "cur").iterdir()] == [
        "1700000100.M1P1.host:2,"]


def test_maildir_a_read_that_fails_for_now_fails_the_poll_not_the_message(
        inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards a bug found so: any error but a missing file set the message
    # aside unread, for good, even one the next poll would not meet.
    source = MaildirSource(maildir_config(inbox))
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1))
    read_file = maildir_module._read_file
    failures = [OSError(errno.EMFILE, "Too many open files")]

    def once(path: str) -> bytes:
        if failures:
            raise failures.pop()
        return read_file(path)

    monkeypatch.setattr(maildir_module, "_read_file", once)
    with pytest.raises(OSError, match="Too many open files"):
        list(source.fetch())
    assert [m.data for m in source.fetch()] == [raw_message(1)]


def test_maildir_what_is_not_a_file_is_left_and_said_once(
        inbox: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = MaildirSource(maildir_config(inbox))
    (inbox / "new" / "1700000100.M1P1.host").mkdir()
    (inbox / "new" / "1700000150.M1P1.host").symlink_to(inbox / "nothing")
    # A link to a file mailbot may read is not followed either (guards a
    # bug: it copied /etc/shadow, say, into set-aside/).
    secret = put(inbox.parent, "secret", b"root:$6$hash:19000:0:99999:7:::\n")
    (inbox / "new" / "1700000160.M1P1.host").symlink_to(secret)
    put(inbox / "new", "1700000200.M1P1.host", raw_message(2))

    with caplog.at_level(logging.WARNING):
        assert [m.data for m in source.fetch()] == [raw_message(2)]
        assert [m.data for m in source.fetch()] == [raw_message(2)]

    said = [r.getMessage() for r in caplog.records]
    assert sorted(said) == [
        f"{inbox / 'new' / name} is not a file: left as it is"
        for name in ("1700000100.M1P1.host", "1700000150.M1P1.host",
                     "1700000160.M1P1.host")]


def test_maildir_a_file_turned_into_a_link_after_listing_is_not_followed(
        inbox: Path) -> None:
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1))
    secret = put(inbox.parent, "secret", b"not mail\n")
    link = inbox / "new" / "1700000100.M1P1.host"
    link.unlink()
    link.symlink_to(secret)
    with pytest.raises(OSError) as refused:
        maildir_module._read_file(str(link))
    assert refused.value.errno == errno.ELOOP
    # Nor a pipe put in its place, which would keep the poll waiting.
    link.unlink()
    os.mkfifo(link)
    with pytest.raises(OSError) as refused:
        maildir_module._read_file(str(link))
    assert refused.value.errno == errno.EINVAL


def test_maildir_move_never_replaces_a_message(inbox: Path) -> None:
    source = MaildirSource(maildir_config(inbox))
    put(inbox / ".Handled" / "cur", "1700000100.M1P1.host:2,", b"older")
    put(inbox / "new", "1700000100.M1P1.host", raw_message(1))

    source.mark_handled("maildir:1700000100.M1P1.host")

    handled_dir = inbox / ".Handled" / "cur"
    handled = sorted(p.read_bytes() for p in handled_dir.iterdir())
    assert handled == sorted([b"older", raw_message(1)])


@pytest.mark.parametrize("key", ["maildir:../../etc/passwd", "maildir:.x",
                                 "imap:1:2", "maildir:"])
def test_maildir_rejects_keys_outside_the_maildir(
        inbox: Path, key: str) -> None:
    with pytest.raises(ValueError):
        MaildirSource(maildir_config(inbox)).mark_handled(key)


def test_maildir_rejects_folder_names_with_slashes(inbox: Path) -> None:
    config = MailboxConfig(kind="maildir", path=inbox,
                           handled_folder="../Handled",
                           set_aside_folder="Set aside")

    with pytest.raises(ConfigError, match="handled_folder"):
        MaildirSource(config)


# ------------------------------------------------------------------- IMAP

def test_imap_fetch_yields_messages_with_uidvalidity_and_uid(
        dovecot: DovecotMailbox) -> None:
    for n in (1, 2, 3):
        dovecot.deliver(raw_message(n))
    imap = dovecot.client()
    validity = imap.select_folder("INBOX")[b"UIDVALIDITY"]
    uids = sorted(imap.search("ALL"))
    imap.logout()

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        fetched = list(source.fetch())

    assert [m.key for m in fetched] == [f"imap:{validity}:{u}" for u in uids]
    assert [m.data for m in fetched] == [raw_message(n) for n in (1, 2, 3)]


def test_imap_fetch_leaves_messages_unread(dovecot: DovecotMailbox) -> None:
    dovecot.deliver(raw_message(1))

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        list(source.fetch())

    imap = dovecot.client()
    imap.select_folder("INBOX", readonly=True)
    assert imap.search("UNSEEN") != []
    imap.logout()


def test_imap_fetch_reads_in_batches(dovecot: DovecotMailbox) -> None:
    imap = dovecot.client()
    for n in range(250):
        imap.append("INBOX", raw_message(n))
    imap.logout()

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        fetched = [m.data for m in source.fetch()]

    assert fetched == [raw_message(n) for n in range(250)]


def test_imap_a_message_too_large_is_not_fetched_and_fetches_are_bounded(
        dovecot: DovecotMailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # The bound scaled down: a message over it is not fetched at all, and
    # the others are fetched a few at a time, as their sizes allow.
    monkeypatch.setattr(imap_module, "MAX_MESSAGE_BYTES", 2000)
    monkeypatch.setattr(imap_module, "FETCH_BYTES",
                        2 * len(raw_message(1)) + 10)
    fetches: list[int] = []
    fetch = ImapSource._fetch

    def counted(source: ImapSource, validity: int, uids: list[int]) -> Any:
        fetches.append(len(uids))
        return fetch(source, validity, uids)

    monkeypatch.setattr(ImapSource, "_fetch", counted)
    big = raw_message(2, subject="x" * 2500)
    for data in (raw_message(1), big, raw_message(3), raw_message(4)):
        dovecot.deliver(data)

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        fetched = list(source.fetch())

    assert [m.data for m in fetched] == [
        raw_message(1), b"", raw_message(3), raw_message(4)]
    assert f"message of {len(big):,} bytes" in fetched[1].unreadable
    assert fetches == [2, 1]  # two small ones fit in a fetch


def test_imap_only_messages_over_a_fetchs_share_are_asked_their_size(
        dovecot: DovecotMailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    # Scaled down: a message of up to 1,000 bytes may be fetched unasked;
    # one over it has its size asked first, and one over 2,000 bytes is
    # not fetched at all.
    monkeypatch.setattr(imap_module, "MAX_MESSAGE_BYTES", 2000)
    monkeypatch.setattr(imap_module, "FETCH_BYTES", 1000 * imap_module.BATCH)
    asked: list[list[int]] = []
    fetch = IMAPClient.fetch

    def counted(client: IMAPClient, uids: Any, data: Any, *args: Any) -> Any:
        if data == ["RFC822.SIZE"]:
            asked.append(list(uids))
        return fetch(client, uids, data, *args)

    monkeypatch.setattr(IMAPClient, "fetch", counted)
    middling = raw_message(2, subject="x" * 1200)
    big = raw_message(4, subject="x" * 2500)
    for data in (raw_message(1), middling, raw_message(3), big):
        dovecot.deliver(data)

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        fetched = list(source.fetch())

    assert [m.data for m in fetched] == [
        raw_message(1), middling, raw_message(3), b""]
    assert f"message of {len(big):,} bytes" in fetched[3].unreadable
    assert asked == [[2, 4]]  # UIDs 2 and 4: the two over 1,000 bytes


def test_next_fetch_takes_what_fits_and_passes_over_the_expunged() -> None:
    mb = 1024 * 1024
    # 3 was expunged since the search; 2 is too large to read at all.
    sizes = {1: 30 * mb, 2: 10**10, 4: 30 * mb, 5: 30 * mb, 6: 100}
    batch, rest = imap_module._next_fetch([1, 2, 3, 4, 5, 6], sizes)
    assert batch == [(1, 30 * mb), (2, 10**10), (4, 30 * mb)]
    assert rest == [5, 6]
    # One message larger than a fetch's bytes is still fetched, alone.
    sizes = {7: 40 * mb, 8: 40 * mb}
    assert imap_module._next_fetch([7, 8], sizes) == ([(7, 40 * mb)], [8])


def test_imap_mark_handled_moves_into_a_created_folder(
        dovecot: DovecotMailbox) -> None:
    dovecot.deliver(raw_message(1))
    dovecot.deliver(raw_message(2))

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        first, second = source.fetch()
        source.mark_handled(first.key)
        source.set_aside(second.key)
        assert len(dovecot.folder_messages("INBOX")) == 2  # queued only
        source.flush()
        left = list(source.fetch())

    assert left == []
    assert dovecot.folder_messages("INBOX") == []
    assert dovecot.folder_messages("Handled") == [raw_message(1)]
    assert dovecot.folder_messages("Set aside") == [raw_message(2)]
    imap = dovecot.client()
    subscribed = {name for _, _, name in imap.list_sub_folders()}
    imap.logout()
    assert {"Handled", "Set aside"} <= subscribed


def test_imap_moving_a_message_twice_is_a_warning(
        dovecot: DovecotMailbox, caplog: pytest.LogCaptureFixture) -> None:
    dovecot.deliver(raw_message(1))

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        (message,) = source.fetch()
        source.mark_handled(message.key)
        source.flush()
        with caplog.at_level(logging.WARNING):
            source.set_aside(message.key)
            source.flush()

    assert "no longer in INBOX" in caplog.text
    assert dovecot.folder_messages("Handled") == [raw_message(1)]
    assert dovecot.folder_messages("Set aside") == []


def test_imap_key_from_another_uidvalidity_is_left_alone(
        dovecot: DovecotMailbox, caplog: pytest.LogCaptureFixture) -> None:
    dovecot.deliver(raw_message(1))

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        (message,) = source.fetch()
        _, validity, uid = message.key.split(":")
        with caplog.at_level(logging.WARNING):
            source.mark_handled(f"imap:{int(validity) + 1}:{uid}")
            source.flush()

    assert "UIDVALIDITY" in caplog.text
    assert dovecot.folder_messages("INBOX") == [raw_message(1)]


def test_imap_wrong_password_is_a_clear_config_error(
        dovecot: DovecotMailbox, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    config = dovecot.mailbox_config(password=Secret(file=wrong))

    with closing(ImapSource(config)) as source, \
            pytest.raises(ConfigError) as failure:
        list(source.fetch())

    message = str(failure.value)
    assert f"{dovecot.host}:{dovecot.port}" in message
    assert "refused" in message and dovecot.user in message
    assert "not-the-password" not in message


def test_imap_server_down_is_transient() -> None:
    port = free_port()
    config = MailboxConfig(kind="imap", path=Path("unused"),
                           handled_folder="Handled",
                           set_aside_folder="Set aside", host=HOST, port=port,
                           security="none", username="nobody",
                           timeout_seconds=2, reconnect_attempts=1)

    with pytest.raises(TransientError, match=f"{HOST}:{port}"):
        list(ImapSource(config).fetch())


def test_imap_silent_server_times_out_as_transient(
        dovecot: DovecotMailbox, silent_port: int) -> None:
    config = dovecot.mailbox_config(port=silent_port, timeout_seconds=0.3,
                                    reconnect_attempts=1)
    started = time.monotonic()

    with pytest.raises(TransientError, match=f"{HOST}:{silent_port}"):
        list(ImapSource(config).fetch())

    assert time.monotonic() - started < 3


def test_imap_reconnects_after_a_server_restart(
        dovecot: DovecotMailbox) -> None:
    dovecot.deliver(raw_message(1))

    with closing(ImapSource(dovecot.mailbox_config())) as source:
        (message,) = source.fetch()
        dovecot.restart()
        source.mark_handled(message.key)
        source.flush()

    assert dovecot.folder_messages("Handled") == [raw_message(1)]


def test_imap_stopped_server_is_transient_then_recovers(
        dovecot: DovecotMailbox) -> None:
    dovecot.deliver(raw_message(1))

    config = dovecot.mailbox_config(reconnect_attempts=1)
    with closing(ImapSource(config)) as source:
        list(source.fetch())
        dovecot.stop()
        with pytest.raises(TransientError, match=str(dovecot.port)):
            list(source.fetch())
        dovecot.server.start()
        assert [m.data for m in source.fetch()] == [raw_message(1)]


def test_imap_security_none_on_a_remote_host_warns(
        caplog: pytest.LogCaptureFixture) -> None:
    config = MailboxConfig(kind="imap", path=Path("unused"),
                           handled_folder="Handled",
                           set_aside_folder="Set aside",
                           host="mail.example.org", port=143, security="none")

    with caplog.at_level(logging.WARNING):
        ImapSource(config)

    assert "unencrypted" in caplog.text


# Servers without MOVE (and without UIDPLUS): the fallback must still put
# each message in its folder and never lose one.
_BASIC = "IMAP4rev1 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN"


@pytest.fixture(scope="module", params=["UIDPLUS", ""],
                ids=["uidplus", "neither"])
def old_dovecot(request: pytest.FixtureRequest) -> Iterator[DovecotServer]:
    server = DovecotServer(capability=f"{_BASIC} {request.param}".strip())
    server.start()
    yield server
    server.remove()


def test_imap_without_move_copies_then_deletes(
        old_dovecot: DovecotServer) -> None:
    mailbox_ = old_dovecot.new_mailbox()
    for n in (1, 2, 3):
        mailbox_.deliver(raw_message(n))

    with closing(ImapSource(mailbox_.mailbox_config())) as source:
        first, second, _ = source.fetch()
        source.mark_handled(first.key)
        source.mark_handled(second.key)
        source.flush()  # both in one COPY, one STORE and one EXPUNGE
        left = [m.data for m in source.fetch()]
        uidplus = source._imap.has_capability("UIDPLUS")

    assert left == [raw_message(3)]
    assert mailbox_.folder_messages("Handled") == [raw_message(1),
                                                    raw_message(2)]
    inbox = mailbox_.folder_messages("INBOX")
    # Without UIDPLUS the originals stay, flagged \Deleted, never expunged.
    assert inbox == ([raw_message(3)] if uidplus
                     else [raw_message(n) for n in (1, 2, 3)])
