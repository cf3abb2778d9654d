"""Many messages in one commit, and their moves made together after it.

The pipeline commits a batch of messages as one journal line, with a
savepoint before each message so that one that fails undoes only itself;
only then does it move the batch's messages, which an IMAP source does
with one MOVE per folder. These tests run on real files, a real record
and the real Dovecot of tests/servers.py; faults are injected into the
workflow or the process, never into the store or the mailbox.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from harness import Harness, example_config, make_mail, sample
from imapclient import IMAPClient
from servers import DovecotMailbox
from test_crash import mail_batch, outcome, prepare

from mailbot import mail
from mailbot.outcome import Outcome
from mailbot.sources import MailSource, RawMail
from mailbot.sources.imap import (
    SET_CHARS,
    ImapSource,
    header_message_id,
    uid_set,
    uid_sets,
)
from mailbot.storage import JournalStorage, journal_of
from mailbot.store import Store

START = "2027-01-12 09:35"


def message(n: int) -> dict[str, object]:
    return {"key": f"maildir:{n}", "message_id": f"<{n}@school.example.org>",
            "from": "head@school.example.org", "subject": f"Comment {n}",
            "received_at": "2027-01-12T09:30:00+00:00", "outcome": "handled",
            "kind": "comment", "reason": "comment stored"}


def outgoing(n: int) -> dict[str, object]:
    return {"key": f"receipt:{n}", "status": "pending",
            "message_id": f"<out.{n}@dsa.example.org>", "raw": "x",
            "to": ["head@school.example.org"], "cc": [],
            "in_reply_to": f"<{n}@school.example.org>",
            "created_at": "2027-01-12T09:30:00+00:00",
            "not_before": "2027-01-12T09:30:00+00:00"}


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """The journal's commits (each line is "checksum {commit}")."""
    return [json.loads(line.split(b" ", 1)[1]) for line in
            journal_of(path).read_bytes().splitlines()]


def lookups(store: Store) -> tuple[object, ...]:
    """Every in-memory index of the store, comparable."""
    return (store._message_keys, store._message_ids, store._outgoing_keys,
            store._outgoing_ids, store._pending,
            {a: sorted(t) for a, t in store._replies.items() if t},
            {e: s for e, s in store._by_contact.items() if s},
            {c: s for c, s in store._by_cluster.items() if s})


def durable_keys(path: Path) -> set[str]:
    """The keys of the messages the record on disk holds right now, as a
    new process would read them."""
    raw = JournalStorage(path).read() or {}
    return {doc["key"] for table, docs in raw.items()
            if table.startswith("messages.") for doc in docs.values()}


# ------------------------------------------------------------ the store

def test_a_savepoint_undoes_one_message_and_keeps_the_others(
        tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    cluster = store.add_cluster({"name": "Glenbrae", "status": "active",
                                 "lead": {"email": "lead@x.org"}})
    school = store.add_school({"cluster_id": cluster, "name": "Kirkton",
                               "contact_email": "head@kirkton.org",
                               "status": "invited"})
    store.commit()
    before = len(journal_lines(path))

    store.savepoint()
    store.record_message(message(1))
    store.queue_outgoing(outgoing(1))
    store.update_school(school, {"status": "self_review_complete"})

    store.savepoint()  # the second message changes a lot, then fails
    second = store.record_message(message(2))
    store.queue_outgoing(outgoing(2))
    store.update_school(school, {"contact_email": "new@kirkton.org",
                                 "status": "awarded"})
    store.add_cluster({"name": "Half made", "status": "incomplete",
                       "lead": {}})
    store.rollback_to_savepoint()

    assert store.message_by_key("maildir:2") is None
    assert store.message_by_id("<2@school.example.org>") is None
    assert store.outgoing_by_key("receipt:2") is None
    assert store.school(school)["status"] == "self_review_complete"
    assert [s["name"] for s in store.schools_with_contact("head@kirkton.org")
            ] == ["Kirkton"]
    assert store.schools_with_contact("new@kirkton.org") == []
    assert [c["name"] for c in store.all_clusters()] == ["Glenbrae"]
    assert store.replies_to_since("head@school.example.org", "") == 1

    store.savepoint()
    third = store.record_message(message(3))
    store.commit()

    assert third == second  # the id the undone message had is given again
    lines = journal_lines(path)
    assert len(lines) == before + 1  # the whole batch: one commit
    written = {(table.split(".")[0], doc["key"] if "key" in doc else
                doc.get("name")) for table, _, doc in lines[-1]["c"]}
    assert written == {("messages", "maildir:1"), ("messages", "maildir:3"),
                       ("outgoing", "receipt:1"), ("schools", "Kirkton")}

    again = Store(path)
    assert [m["key"] for m in again.all_messages()] == ["maildir:1",
                                                        "maildir:3"]
    assert [o["key"] for o in again.all_outgoing()] == ["receipt:1"]
    assert again.school(school)["status"] == "self_review_complete"
    assert lookups(again) == lookups(store)


def test_a_savepoint_restores_what_changed_on_both_sides_of_it(
        tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    cluster = store.add_cluster({"name": "A", "status": "active", "lead": {}})
    store.commit()

    store.update_cluster(cluster, {"name": "B"})
    new = store.add_cluster({"name": "C", "status": "active", "lead": {}})
    store.savepoint()
    store.update_cluster(cluster, {"name": "D"})
    store.update_cluster(new, {"name": "E"})
    store.rollback_to_savepoint()
    assert [c["name"] for c in store.all_clusters()] == ["B", "C"]

    store.rollback()  # and the whole transaction, back to the commit
    assert [c["name"] for c in store.all_clusters()] == ["A"]
    assert store.add_cluster({"name": "F", "status": "active",
                              "lead": {}}) == new  # ids given back
    with pytest.raises(RuntimeError):
        store.rollback_to_savepoint()  # the rollback ended the savepoint
    store.commit()
    assert [c["name"] for c in Store(path).all_clusters()] == ["A", "F"]


def test_writes_cost_one_document_not_a_shard(tmp_path: Path) -> None:
    # The record in memory is TinyDB's: a write changes the one document
    # and TinyDB's tables read it back.
    store = Store(tmp_path / "record.json")
    for n in range(1, 1201):
        store.record_message(message(n))
    store.update_message(700, {"outcome": "set_aside"})
    raw = store._storage.read()
    assert raw is not None
    assert sorted(t for t in raw if t.startswith("messages.")) == [
        "messages.00000", "messages.00001", "messages.00002"]
    assert len(raw["messages.00001"]) == 500
    assert raw["messages.00001"]["700"]["outcome"] == "set_aside"
    assert [m["key"] for m in store.set_aside_messages()] == ["maildir:700"]
    assert len(store.all_messages()) == 1200
    store.commit()
    assert len(Store(tmp_path / "record.json").all_messages()) == 1200


# --------------------------------------------------------- the pipeline

class Watched:
    """A real source that notes, at each move asked for, which messages
    the record on disk holds at that moment."""

    def __init__(self, source: MailSource, record: Path) -> None:
        self.source, self.record = source, record
        self.moves: list[tuple[str, str, bool, int]] = []
        self.flushes = 0

    def _note(self, key: str, folder: str) -> None:
        durable = durable_keys(self.record)
        self.moves.append((key, folder, key in durable, len(durable)))

    def fetch(self) -> Iterator[RawMail]:
        return self.source.fetch()

    def mark_handled(self, key: str) -> None:
        self._note(key, "handled")
        self.source.mark_handled(key)

    def set_aside(self, key: str) -> None:
        self._note(key, "set aside")
        self.source.set_aside(key)

    def flush(self) -> None:
        self.flushes += 1
        self.source.flush()

    def wait(self, timeout: float) -> None:
        self.source.wait(timeout)

    def interrupt(self) -> None:
        self.source.interrupt()

    def close(self) -> None:
        self.source.close()


def auto_reply(n: int) -> bytes:
    return make_mail(f"Person {n} <person{n}@school.example.org>",
                     f"Automatic reply {n}", "I am out of the office.",
                     Message_ID=f"<reply-{n}@school.example.org>",
                     Auto_Submitted="auto-replied")


def newsletter(n: int) -> bytes:
    return make_mail("EdTech Weekly <news@edtech.example.com>",
                     f"Newsletter {n}", "Ten apps for your classroom.",
                     Message_ID=f"<news-{n}@edtech.example.com>",
                     Precedence="bulk")


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name.split(":")[0] for p in (folder / "cur").iterdir())


@pytest.fixture
def bot(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(example_config(tmp_path), START)
    yield harness
    harness.close()


def fail_after_applying(bot: Harness, message_id: str) -> None:
    """Make the workflow fail on one message after it changed the record,
    as a bug halfway through would."""
    flow = bot.bot.pipeline.flow
    real: Callable[..., Outcome] = flow.apply

    def apply(parsed: mail.Incoming, understood: Any) -> Outcome:
        done = real(parsed, understood)
        if parsed.message_id == message_id:
            raise RuntimeError("fault injected after the workflow ran")
        return done

    flow.apply = apply  # type: ignore[method-assign,assignment]


def test_a_failing_message_in_a_batch_undoes_only_itself(
        bot: Harness) -> None:
    nominations = [sample(n) for n in ("01-nomination-list",
                                       "02-nomination-csv",
                                       "03-nomination-outlook-html")]
    failing = mail.parse(nominations[1]).message_id
    fail_after_applying(bot, failing)
    inbox = bot.config.mailbox.path
    bot.deliver(*nominations)
    names = sorted(p.name for p in (inbox / "new").iterdir())
    source = Watched(bot.bot.pipeline.source, bot.config.store_path)
    bot.bot.pipeline.source = source

    assert bot.bot.pipeline.poll() == 3

    records = {m["message_id"]: m for m in bot.bot.store.all_messages()}
    assert records[failing]["outcome"] == "set_aside"
    assert records[failing]["reason"] == ("error while handling: "
                                          "RuntimeError: fault injected "
                                          "after the workflow ran")
    others = [mail.parse(n).message_id for n in (nominations[0],
                                                  nominations[2])]
    assert [records[m]["outcome"] for m in others] == ["handled", "handled"]
    # The other two nominations made their clusters and schools; the
    # failing one made nothing, not even the outgoing mail it had queued.
    store = bot.bot.store
    clusters = {c.doc_id for c in store.all_clusters()}
    assert clusters == {records[m]["cluster_id"] for m in others}
    assert records[failing]["cluster_id"] is None
    assert {s["cluster_id"] for s in store.all_schools()} == clusters
    queued = store.all_outgoing()
    assert queued and {o["cluster_id"] for o in queued} == clusters
    # One commit for the three messages, written before any move.
    first = journal_lines(bot.config.store_path)[0]["c"]
    assert {doc["key"] for table, _, doc in first
            if table.startswith("messages.")} == {
        "maildir:" + n for n in names}
    assert [(key, folder, durable) for key, folder, durable, _
            in source.moves] == [
        ("maildir:" + names[0], "handled", True),
        ("maildir:" + names[1], "set aside", True),
        ("maildir:" + names[2], "handled", True)]
    assert list((inbox / "new").iterdir()) == []
    assert folder_names(inbox / ".Handled") == [names[0], names[2]]
    assert folder_names(inbox / ".Set aside") == [names[1]]


def test_moves_come_only_after_the_commit_of_their_batch(
        bot: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailbot.pipeline.BATCH", 4)
    monkeypatch.setattr("mailbot.pipeline.MOVES_AT_ONCE", 8)
    bot.deliver(*[newsletter(n) if n % 3 == 2 else auto_reply(n)
                  for n in range(10)])
    source = Watched(bot.bot.pipeline.source, bot.config.store_path)
    bot.bot.pipeline.source = source

    assert bot.bot.pipeline.poll() == 10

    # Batches of 4, 4 and 2: each asked to move after its own commit, and
    # before the next batch was handled; the moves made together once 8
    # waited, and at the end of the poll.
    assert [(durable, count) for _, _, durable, count in source.moves] == (
        [(True, 4)] * 4 + [(True, 8)] * 4 + [(True, 10)] * 2)
    assert [folder for _, folder, _, _ in source.moves] == [
        "set aside" if n % 3 == 2 else "handled" for n in range(10)]
    assert source.flushes == 2
    assert len(journal_lines(bot.config.store_path)) >= 3
    inbox = bot.config.mailbox.path
    assert list((inbox / "new").iterdir()) == []
    assert len(list((inbox / ".Handled" / "cur").iterdir())) == 7
    assert len(list((inbox / ".Set aside" / "cur").iterdir())) == 3


def test_a_batch_the_disk_refuses_is_forgotten_and_not_moved(
        bot: Harness) -> None:
    bot.deliver(sample("01-nomination-list"), auto_reply(1), newsletter(2))
    inbox = bot.config.mailbox.path
    waiting = sorted(p.name for p in (inbox / "new").iterdir())
    journal = journal_of(bot.config.store_path)
    assert journal.read_bytes() == b""  # compacted at start
    journal.unlink()
    journal.mkdir()  # the next append cannot open it

    with pytest.raises(IsADirectoryError):
        bot.bot.pipeline.poll()

    store = bot.bot.store
    assert store.all_messages() == [] and store.all_outgoing() == []
    assert store.all_clusters() == []
    assert sorted(p.name for p in (inbox / "new").iterdir()) == waiting

    journal.rmdir()
    assert bot.bot.pipeline.poll() == 3
    assert [m["outcome"] for m in Store(bot.config.store_path).all_messages()
            ] == ["handled", "ignored", "set_aside"]
    assert list((inbox / "new").iterdir()) == []
    assert len(bot.export()["clusters"]) == 1


def test_a_message_handled_twice_in_a_batch_is_a_duplicate(
        bot: Harness) -> None:
    # The second copy is judged against the first before either is
    # committed.
    bot.deliver(auto_reply(1), auto_reply(1))
    bot.cycle()
    kinds = [m["kind"] for m in bot.bot.store.all_messages()]
    assert kinds == ["auto-reply", "duplicate"]


# ----------------------------------------------------------------- IMAP

def test_uid_sets_are_runs() -> None:
    assert uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"
    assert uid_set([]) == ""


def test_uid_sets_are_cut_between_runs_to_a_length() -> None:
    assert uid_sets([1, 2, 3, 7, 9, 10], limit=8) == ["1:3,7", "9:10"]
    assert uid_sets([1, 2, 3, 7, 9, 10]) == ["1:3,7,9:10"]
    assert uid_sets([123456789], limit=3) == ["123456789"]  # alone, whole
    assert uid_sets([]) == []
    every_other = list(range(1, 20001, 2))
    sets = uid_sets(every_other)
    assert all(len(s) <= SET_CHARS for s in sets) and len(sets) > 1
    assert [int(u) for s in sets for u in s.split(",")] == every_other


def test_imap_moves_a_batch_with_one_move_per_folder(
        dovecot: DovecotMailbox, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailbot.pipeline.BATCH", 5)
    monkeypatch.setattr("mailbot.pipeline.MOVES_AT_ONCE", 10)
    imap = dovecot.client()
    raws = [newsletter(n) if n % 4 == 3 else auto_reply(n) for n in range(12)]
    for raw in raws:
        imap.append("INBOX", raw)
    imap.logout()

    # Every MOVE the source sends, as it goes to the server, with what the
    # record on disk holds at that moment.
    record = tmp_path / "mailbot.json"
    sent: list[tuple[str, str, int]] = []
    real_move = IMAPClient.move

    def move(self: IMAPClient, messages: Any, folder: str) -> Any:
        sent.append((str(messages), folder, len(durable_keys(record))))
        return real_move(self, messages, folder)

    monkeypatch.setattr(IMAPClient, "move", move)
    config = example_config(tmp_path, mailbox=dovecot.mailbox_config())
    bot = Harness(config, START, deliver=dovecot.deliver)
    try:
        assert bot.bot.pipeline.poll() == 12
        records = bot.bot.store.all_messages()
    finally:
        bot.close()

    # UIDs 1..12 in three batches of 5, 5 and 2; one MOVE per folder for
    # the first two batches together, once 10 waited, after their commits;
    # then one per folder for the last, at the end of the poll.
    assert sent == [("1:3,5:7,9:10", "Handled", 10), ("4,8", "Set aside", 10),
                    ("11", "Handled", 12), ("12", "Set aside", 12)]
    assert dovecot.folder_messages("INBOX") == []
    assert [header_message_id(m) for m in dovecot.folder_messages("Handled")
            ] == [header_message_id(r) for n, r in enumerate(raws)
                  if n % 4 != 3]
    assert [header_message_id(m) for m in
            dovecot.folder_messages("Set aside")] == [
        header_message_id(r) for n, r in enumerate(raws) if n % 4 == 3]
    assert [r["outcome"] for r in records] == [
        "set_aside" if n % 4 == 3 else "ignored" for n in range(12)]


def test_imap_flush_leaves_alone_what_is_gone_and_moves_the_rest(
        dovecot: DovecotMailbox) -> None:
    for n in range(4):
        dovecot.deliver(auto_reply(n))
    with closing(ImapSource(dovecot.mailbox_config())) as source:
        fetched = list(source.fetch())
        # Someone else moves the second message away meanwhile.
        imap = dovecot.client()
        imap.create_folder("Elsewhere")
        imap.select_folder("INBOX")
        imap.move([int(fetched[1].key.split(":")[2])], "Elsewhere")
        imap.logout()
        for raw in fetched:
            source.mark_handled(raw.key)
        source.set_aside(fetched[3].key)  # the last word counts
        source.flush()
        source.flush()  # nothing left to do

    assert [header_message_id(m) for m in dovecot.folder_messages("Handled")
            ] == ["<reply-0@school.example.org>",
                  "<reply-2@school.example.org>"]
    assert [header_message_id(m) for m in
            dovecot.folder_messages("Set aside")] == [
        "<reply-3@school.example.org>"]
    assert dovecot.folder_messages("INBOX") == []
    assert len(dovecot.folder_messages("Elsewhere")) == 1


def test_imap_flush_looks_again_when_a_message_goes_during_the_move(
        dovecot: DovecotMailbox, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    for n in range(3):
        dovecot.deliver(auto_reply(n))
    real = ImapSource._current_uids
    calls = []

    def current_uids(self: ImapSource, keys: list[str]) -> list[int]:
        found = real(self, keys)
        calls.append(found)
        if len(calls) == 1:
            # Between the search and the MOVE, another client takes the
            # middle message away: the server refuses the whole MOVE.
            imap = dovecot.client()
            imap.create_folder("Elsewhere")
            imap.select_folder("INBOX")
            imap.move([found[1]], "Elsewhere")
            imap.logout()
        return found

    monkeypatch.setattr(ImapSource, "_current_uids", current_uids)
    with closing(ImapSource(dovecot.mailbox_config())) as source, \
            caplog.at_level(logging.INFO, logger="mailbot"):
        for raw in source.fetch():
            source.mark_handled(raw.key)
        source.flush()

    assert calls == [[1, 2, 3], [1, 3]]
    assert "EXPUNGEISSUED" in caplog.text and "looking again" in caplog.text
    assert [header_message_id(m) for m in dovecot.folder_messages("Handled")
            ] == ["<reply-0@school.example.org>",
                  "<reply-2@school.example.org>"]
    assert dovecot.folder_messages("INBOX") == []


# -------------------------------------------------- kills inside a batch

# A mailbot run in its own process, at a fixed time, in batches of 5, that
# kills itself with SIGKILL at one point of its second batch, or at none.
DRIVER = r'''
import json, os, signal, sys
from datetime import datetime, timezone
from pathlib import Path

import mailbot.pipeline
from mailbot import config, daemon, storage
from mailbot.app import open_mailbot
from mailbot.clock import ManualClock

point = sys.argv[1]
mailbot.pipeline.BATCH = 5
clock = ManualClock(datetime(2027, 1, 12, 10, 0, tzinfo=timezone.utc))
bot = open_mailbot(config.load(Path("config.toml")), clock)
pipeline = bot.pipeline

def die():
    os.kill(os.getpid(), signal.SIGKILL)

seen = {"taken": 0, "moves": 0, "appends": 0}

real_take = pipeline._take
def take(raw, parsed=None):
    seen["taken"] += 1
    return real_take(raw, parsed)
pipeline._take = take

real_apply = pipeline.flow.apply
def apply(parsed, understood):
    done = real_apply(parsed, understood)
    if point == "handling" and seen["taken"] >= 8:
        # The workflow has changed the record for a message of the
        # second batch; nothing of that batch is committed.
        die()
    return done
pipeline.flow.apply = apply

real_append = storage.JournalStorage.append
def append(self, changes):
    seen["appends"] += 1
    if point == "torn-commit" and seen["appends"] == 2:
        line = json.dumps({"c": list(changes)}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8") + b"\n"
        with open(self.journal, "ab") as out:
            out.write(line[:len(line) // 2])
            out.flush()
            os.fsync(out.fileno())
        die()
    real_append(self, changes)
storage.JournalStorage.append = append

source = pipeline.source
for name in ("mark_handled", "set_aside"):
    def moved(key, real=getattr(source, name)):
        seen["moves"] += 1
        if point == "after-commit" and seen["moves"] == 6:
            die()  # the second batch is committed, none of it moved
        real(key)
        if point == "mid-moves" and seen["moves"] == 8:
            die()  # three of the second batch moved, two not
    setattr(source, name, moved)

real_deliver = mailbot.pipeline.deliver_pending
def deliver(*args):
    if point == "before-delivery":
        die()  # every batch committed and moved, nothing sent
    return real_deliver(*args)
mailbot.pipeline.deliver_pending = deliver

daemon.cycle(bot)
bot.close()
'''

KILL_POINTS = ["handling", "torn-commit", "after-commit", "mid-moves",
               "before-delivery"]


def drive(home: Path, point: str = "none") -> int:
    return subprocess.run([sys.executable, "-c", DRIVER, point], cwd=home,
                          env={**os.environ, "TZ": "UTC"},
                          capture_output=True, timeout=120).returncode


@pytest.fixture(scope="module")
def batch() -> list[bytes]:
    return mail_batch(22)


@pytest.fixture(scope="module")
def calm(batch: list[bytes], tmp_path_factory: pytest.TempPathFactory
         ) -> tuple[object, object]:
    home = tmp_path_factory.mktemp("calm") / "home"
    prepare(home, batch)
    assert drive(home) == 0
    return outcome(home)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_inside_a_batch_ends_as_a_calm_run(
        point: str, batch: list[bytes], calm: tuple[object, object],
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    prepare(home, batch)
    assert drive(home, point) == -signal.SIGKILL

    # Killed where meant: what was committed before the kill is on disk,
    # nothing after it, and only what was committed has left the inbox.
    durable = len(durable_keys(home / "data" / "mailbot.json"))
    inbox = home / "data" / "inbox" / "new"
    left = len(list(inbox.iterdir()))
    assert (durable, left) == {"handling": (5, 17), "torn-commit": (5, 17),
                               "after-commit": (10, 17),
                               "mid-moves": (10, 14),
                               "before-delivery": (22, 0)}[point]
    outbox = home / "data" / "outbox"
    assert not outbox.exists() or list(outbox.iterdir()) == []

    assert drive(home) == 0
    assert outcome(home) == calm
    assert list(inbox.iterdir()) == []
    moved = list((home / "data" / "inbox").glob(".*/cur/*"))
    assert len(moved) == len(batch)
