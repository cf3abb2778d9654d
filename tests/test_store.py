"""The record: one owner, atomic commits that write only what changed,
backups, and records from older versions brought up to date."""

from __future__ import annotations

import errno
import gc
import json
import os
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot import tagging
from mailbot.errors import StoreLockedError
from mailbot.shards import ShardedTable, shard_name
from mailbot.storage import (
    DamagedRecordError,
    JournalStorage,
    _encoded,
    backup_of,
    journal_of,
)
from mailbot.store import SCHEMA_VERSION, Store, json_copy

NOW = datetime(2027, 1, 12, 9, 30, tzinfo=UTC)


def message(n: int) -> dict[str, object]:
    return {"key": f"maildir:{n}", "message_id": f"<{n}@school.example.org>",
            "from": "head@school.example.org", "subject": f"Comment {n}",
            "received_at": "2027-01-12T09:30:00+00:00", "outcome": "handled",
            "kind": "comment", "reason": "comment stored"}


def test_committed_changes_survive_reopening(tmp_path: Path) -> None:
    store = Store(tmp_path / "record.json")
    cluster_id = store.add_cluster({"name": "Glenbrae Cluster", "status": "active",
                                    "lead": {"email": "lead@x.org"}})
    store.add_school({"cluster_id": cluster_id, "name": "Kirkton Primary School",
                      "contact_email": "head@kirkton.org", "status": "invited"})
    store.commit()

    again = Store(tmp_path / "record.json")
    assert again.cluster(cluster_id)["name"] == "Glenbrae Cluster"
    assert [s["name"] for s in again.schools_with_contact("head@kirkton.org")] \
        == ["Kirkton Primary School"]


def test_nothing_reaches_the_disk_before_commit(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    before = journal_of(path).read_bytes()
    cluster_id = store.add_cluster({"name": "Uncommitted", "status": "active",
                                    "lead": {}})
    store.update_cluster(cluster_id, {"name": "Still uncommitted"})
    assert journal_of(path).read_bytes() == before
    store.rollback()
    assert store.all_clusters() == []
    assert Store(path).all_clusters() == []


def test_a_failed_write_undoes_the_transaction(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    kept = store.add_cluster({"name": "Kept", "status": "active", "lead": {}})
    store.commit()
    good = journal_of(path).read_bytes()

    store.update_cluster(kept, {"name": "Renamed"})
    store.add_cluster({"name": "Broken", "when": NOW})  # not JSON-serialisable
    with pytest.raises(TypeError):
        store.commit()
    assert journal_of(path).read_bytes() == good
    # Memory does not run ahead of the file, and updates are undone too.
    assert [c["name"] for c in store.all_clusters()] == ["Kept"]
    assert [c["name"] for c in Store(path).all_clusters()] == ["Kept"]


def test_a_commit_writes_only_what_changed(tmp_path: Path) -> None:
    # The cost of handling a message must not grow with the record: one
    # commit appends the same few bytes whether the record is small or big.
    store = Store(tmp_path / "record.json")
    sizes = []
    for n in range(1, 2001):
        store.record_message(message(n))
        before = journal_of(store.path).stat().st_size
        store.commit()
        sizes.append(journal_of(store.path).stat().st_size - before)
    assert max(sizes[1500:]) <= sizes[10] + 8  # only the id's digits differ
    assert store.message_by_key("maildir:1999")["subject"] == "Comment 1999"
    assert store.message_by_id("<7@school.example.org>")["key"] == "maildir:7"


def test_a_torn_commit_is_ignored_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    store.record_message(message(1))
    store.commit()
    with open(journal_of(path), "ab") as out:
        out.write(b'{"c":[["messages.00000","2",{"key":"maildir:2"')  # crash

    again = Store(path)
    assert [m["key"] for m in again.all_messages()] == ["maildir:1"]
    again.record_message(message(3))
    again.commit()
    lines = journal_of(path).read_bytes().splitlines()
    for line in lines:  # each is "checksum {commit}"
        checksum, commit = line.split(b" ", 1)
        assert checksum == f"{zlib.crc32(commit):08x}".encode()
        assert json.loads(commit)["c"]
    assert [m["key"] for m in Store(path).all_messages()] == [
        "maildir:1", "maildir:3"]


def test_the_data_folder_mailbot_makes_is_its_owners_alone(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "data" / "mailbot.json")
    store.lock()
    store.close()
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700


def test_undeliverable_marks_follow_undo_and_clearing(tmp_path: Path) -> None:
    store = Store(tmp_path / "mailbot.json")
    store.mark_undeliverable("a@x.org", NOW, "550 5.1.1", "<1@x.org>")
    store.commit()
    store.savepoint()
    store.mark_undeliverable("b@x.org", NOW, "550 5.1.1", "<2@x.org>")
    assert store.clear_undeliverable("a@x.org", NOW, "mail came from it")
    assert not store.is_undeliverable("a@x.org")
    store.rollback_to_savepoint()
    assert store.is_undeliverable("a@x.org")
    assert not store.is_undeliverable("b@x.org")

    assert store.clear_undeliverable("a@x.org", NOW, "cleared by staff")
    assert not store.clear_undeliverable("a@x.org", NOW, "again")
    store.commit()
    again = Store(tmp_path / "mailbot.json")
    assert not again.is_undeliverable("a@x.org")
    assert again.undeliverable() == []
    (mark,) = again.addresses.all()  # kept as history
    assert mark["cleared_because"] == "cleared by staff"


def test_a_second_owner_is_refused(tmp_path: Path) -> None:
    first = Store(tmp_path / "record.json")
    first.lock()
    second = Store(tmp_path / "record.json")
    with pytest.raises(StoreLockedError, match="another mailbot"):
        second.lock()
    first.close()
    second.lock()  # free once the first has gone
    second.close()


def started(path: Path, times: int) -> None:
    """A record with a message from each of `times` daemon starts."""
    for n in range(1, times + 1):
        store = Store(path)
        store.lock()
        store.record_message(message(n))
        store.commit()
        store.close()


def test_each_start_keeps_a_backup_and_three_at_most(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    started(path, 5)
    backups = sorted(p.name for p in tmp_path.glob("record.json.[0-9]"))
    assert backups == ["record.json.1", "record.json.2", "record.json.3"]
    newest = json.loads((tmp_path / "record.json.1").read_text())
    assert len(newest["messages.00000"]) == 3  # before the fifth start's own
    assert len(Store(path).all_messages()) == 5


def test_a_damaged_record_names_the_last_good_backup(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    for _ in range(2):
        store = Store(path)
        store.lock()
        store.close()
    path.write_text('{"clusters": {"1": {"name": "Glen')
    with pytest.raises(DamagedRecordError) as caught:
        Store(path)
    assert "record.json.1" in str(caught.value)
    assert path.read_text().startswith('{"clusters"')  # left for a person
    # The garbage collector, paused while a record is read, is on again.
    assert gc.isenabled()


def test_the_record_read_at_start_is_left_out_of_garbage_collections(
        tmp_path: Path) -> None:
    from harness import example_config

    from mailbot.app import open_mailbot
    from mailbot.clock import ManualClock

    tagging.default_tagger.cache_clear()
    bot = open_mailbot(example_config(tmp_path), ManualClock(NOW))
    try:
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
        # Built at start-up, and frozen with the rest: no poll waits for it.
        assert tagging.default_tagger.cache_info().currsize == 1
        # A document read from the record is frozen out of collections.
        store = bot.store
        cluster = store.add_cluster({"name": "Glen", "status": "active",
                                     "lead": {}})
        store.commit()
        bot.close()
        bot = open_mailbot(example_config(tmp_path), ManualClock(NOW))
        raw = bot.store._storage.read()
        assert raw is not None
        doc = raw[shard_name("clusters", cluster)][str(cluster)]
        assert gc.is_tracked(doc)
        assert not any(found is doc for generation in (0, 1, 2)
                       for found in gc.get_objects(generation))
    finally:
        bot.close()
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize("content, problem", [
    ('{"clusters": 5}', "table 'clusters' is not a set of records"),
    ('{"clusters": {"1": {"name": "x"}}}', "clusters 1 has no lead, status"),
    ('{"schools": {"3": {"name": "x", "status": "invited"}}}',
     "schools 3 has no cluster_id"),
])
def test_a_record_of_the_wrong_shape_stops_start_up(
        tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "record.json"
    path.write_text(content)
    with pytest.raises(DamagedRecordError) as caught:
        Store(path)
    assert problem in str(caught.value)
    assert path.read_text() == content


def test_a_version_1_record_is_brought_up_to_date(tmp_path: Path) -> None:
    # The layout of the first release: one table each, written whole.
    path = tmp_path / "record.json"
    old = {
        "meta": {"1": {"name": "schema", "version": 1},
                 "2": {"name": "instance", "value": "abc"}},
        "clusters": {"1": {"name": "Glenbrae Cluster", "status": "active",
                           "lead": {"email": "lead@x.org"}}},
        "schools": {"1": {"cluster_id": 1, "name": "Kirkton Primary School",
                          "status": "invited", "contact_email": "h@k.org"}},
        "messages": {"1": message(1)},
        "outgoing": {"1": {"key": "invitation:1", "status": "sent",
                           "message_id": "<m@x>", "raw": "From: x\r\n\r\nbody",
                           "to": ["h@k.org"], "created_at": "2027"},
                     "2": {"key": "reminder:1", "status": "pending",
                           "message_id": "<r@x>", "raw": "From: x\r\n\r\nbody",
                           "to": ["h@k.org"], "created_at": "2027",
                           "not_before": "2027"}},
    }
    path.write_text(json.dumps(old))

    store = Store(path)
    assert store.get_meta("instance") == "abc"
    assert store.cluster(1)["name"] == "Glenbrae Cluster"
    assert store.message_by_key("maildir:1") is not None
    assert store.outgoing_by_key("invitation:1")["raw"] == ""
    assert store.outgoing_by_key("reminder:1")["raw"].startswith("From")
    snapshot = json.loads(path.read_text())
    assert "clusters" not in snapshot and "clusters.00000" in snapshot
    version = [d for d in snapshot["meta.00000"].values()
               if d["name"] == "schema"][0]["version"]
    assert version == SCHEMA_VERSION
    assert json.loads((tmp_path / "record.json.1").read_text()) == old


def test_a_version_2_record_keeps_its_comments_apart(tmp_path: Path) -> None:
    # Version 2 kept each school's comments in a list in its document.
    path = tmp_path / "record.json"

    def said(n: int) -> dict[str, str]:
        return {"received_at": f"2027-01-1{n}T09:30:00+00:00",
                "text": f"Comment {n}", "message_id": f"<{n}@k.org>"}

    old = {
        "meta.00000": {"1": {"name": "schema", "version": 2},
                       "2": {"name": "instance", "value": "abc"}},
        "clusters.00000": {"1": {"name": "Glenbrae Cluster",
                                 "status": "active",
                                 "lead": {"email": "lead@x.org"}}},
        "schools.00000": {
            "1": {"cluster_id": 1, "name": "Kirkton Primary School",
                  "status": "invited", "contact_email": "h@k.org",
                  "comments": [said(3), said(1)]},
            "2": {"cluster_id": 1, "name": "Glenbrae High School",
                  "status": "invited", "contact_email": "o@g.org",
                  "comments": []},
            "3": {"cluster_id": 1, "name": "Balgonie Primary School",
                  "status": "invited", "contact_email": "e@b.org",
                  "comments": [said(2)]},
        },
        "messages.00000": {"1": message(1)},
    }
    path.write_text(json.dumps(old))

    store = Store(path)
    assert store.get_meta("instance") == "abc"
    # Each school's comments, in the order of its list, and only its own.
    assert [dict(c) for c in store.comments_of(1)] == [
        {"school_id": 1, **said(3)}, {"school_id": 1, **said(1)}]
    assert store.comments_of(2) == []
    assert [dict(c) for c in store.comments_of(3)] == [
        {"school_id": 3, **said(2)}]
    assert all("comments" not in s for s in store.all_schools())
    assert store.school(1)["contact_email"] == "h@k.org"
    assert store.message_by_key("maildir:1") is not None
    snapshot = json.loads(path.read_text())
    assert snapshot["comments.00000"] == {
        "1": {"school_id": 1, **said(3)}, "2": {"school_id": 1, **said(1)},
        "3": {"school_id": 3, **said(2)}}
    version = [d for d in snapshot["meta.00000"].values()
               if d["name"] == "schema"][0]["version"]
    assert version == SCHEMA_VERSION == 3
    assert json.loads((tmp_path / "record.json.1").read_text()) == old
    # A new comment follows the moved ones.
    store.add_comment(3, said(4))
    store.commit()
    again = Store(path)
    assert [c["text"] for c in again.comments_of(3)] == ["Comment 2",
                                                         "Comment 4"]


def test_comments_are_kept_apart_and_undone_with_the_rest(
        tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    cluster_id = store.add_cluster({"name": "Glenbrae Cluster",
                                    "status": "active",
                                    "lead": {"email": "lead@x.org"}})
    kirkton = store.add_school({"cluster_id": cluster_id, "status": "invited",
                                "name": "Kirkton Primary School"})
    glenbrae = store.add_school({"cluster_id": cluster_id, "status": "invited",
                                 "name": "Glenbrae High School"})
    store.add_comment(kirkton, {"received_at": "1", "text": "first"})
    store.commit()
    before = dict(store.school(kirkton))

    store.add_comment(glenbrae, {"received_at": "2", "text": "kept"})
    store.savepoint()
    store.add_comment(kirkton, {"received_at": "3", "text": "undone"})
    assert [c["text"] for c in store.comments_of(kirkton)] == ["first",
                                                               "undone"]
    store.rollback_to_savepoint()
    assert [c["text"] for c in store.comments_of(kirkton)] == ["first"]
    assert [c["text"] for c in store.comments_of(glenbrae)] == ["kept"]
    # The id given to the undone comment is given again.
    assert store.add_comment(kirkton, {"received_at": "4",
                                       "text": "second"}) == 3
    store.commit()
    assert dict(store.school(kirkton)) == before  # a comment leaves it be

    store.add_comment(glenbrae, {"received_at": "5", "text": "rolled back"})
    store.rollback()
    assert [c["text"] for c in store.comments_of(glenbrae)] == ["kept"]

    again = Store(path)
    assert [c["text"] for c in again.comments_of(kirkton)] == ["first",
                                                               "second"]
    assert [c["text"] for c in again.comments_of(glenbrae)] == ["kept"]
    assert [c.doc_id for c in again.comments_of(kirkton)] == [1, 3]


def test_latest_comments_their_count_and_a_repeated_text(
        tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    cluster_id = store.add_cluster({"name": "C", "status": "active",
                                    "lead": {"email": "lead@x.org"}})
    school = store.add_school({"cluster_id": cluster_id, "name": "Kirkton",
                               "status": "invited"})
    other = store.add_school({"cluster_id": cluster_id, "name": "Glenbrae",
                              "status": "invited"})
    for n in range(7):
        store.add_comment(school, {"received_at": str(n), "text": f"c{n}"})
    store.commit()
    assert [c["text"] for c in store.comments_of(school, latest=3)] == [
        "c4", "c5", "c6"]
    assert store.comments_of(school, latest=0) == []
    assert store.comment_count(school) == 7
    assert store.comment_count(other) == 0
    assert store.has_comment(school, "c2")
    assert not store.has_comment(other, "c2")  # the text is Kirkton's
    assert not store.has_comment(school, "c9")

    store.savepoint()
    store.add_comment(school, {"received_at": "7", "text": "undone"})
    assert store.has_comment(school, "undone")
    store.rollback_to_savepoint()
    assert not store.has_comment(school, "undone")

    # A text changed since (erased) is no longer found as it was.
    comment_id = store.comments_of(school)[0].doc_id
    store.comments.update(comment_id, {"text": "[erased]"})
    assert not store.has_comment(school, "c0")
    store.commit()
    again = Store(path)
    assert again.has_comment(school, "[erased]")
    assert again.comment_count(school) == 7


def test_a_schools_and_a_clusters_history_through_changes_and_undo(
        tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    at = datetime(2027, 1, 12, 10, tzinfo=UTC)
    store.add_event(at, "nominated", cluster_id=1)
    store.add_event(at, "invited", cluster_id=1, school_id=5)
    store.add_event(at, "comment", cluster_id=2, school_id=6)
    store.commit()
    store.savepoint()
    store.add_event(at, "undone", cluster_id=1, school_id=5)
    assert [e["event"] for e in store.history_of_school(5)] == [
        "invited", "undone"]
    store.rollback_to_savepoint()
    assert [e["event"] for e in store.history_of_school(5)] == ["invited"]
    assert [e["event"] for e in store.history_of_cluster(1)] == [
        "nominated", "invited"]
    store.add_event(at, "reminded", cluster_id=1, school_id=5)
    store.commit()
    again = Store(path)
    assert [e["event"] for e in again.history_of_school(5)] == [
        "invited", "reminded"]
    assert [e["event"] for e in again.history_of_cluster(2)] == ["comment"]
    assert again.history_of_school(7) == []

def test_a_new_record_carries_the_schema_version(tmp_path: Path) -> None:
    store = Store(tmp_path / "record.json")
    store.lock()
    store.close()
    meta = json.loads((tmp_path / "record.json").read_text())["meta.00000"]
    assert {"name": "schema", "version": SCHEMA_VERSION} in meta.values()


def test_the_journal_is_folded_into_the_snapshot_when_it_outgrows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mailbot.storage.MIN_JOURNAL_BYTES", 20_000)
    path = tmp_path / "record.json"
    store = Store(path)
    for n in range(1, 301):
        store.record_message(message(n))
        store.commit()
    assert path.exists() and os.path.getsize(journal_of(path)) < 20_000
    assert len(JournalStorage(path).read()["messages.00000"]) == 300


def test_a_snapshot_is_the_record_as_json_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.json"
    store = Store(path)
    for n in range(1, 1201):
        store.record_message({**message(n), "subject": f"Café «{n}» \u2028"})
    store.commit()
    storage = JournalStorage(path)
    data = storage.read()
    storage.compact()
    whole = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    # The same, and then its checksum, as the object's last member.
    checked = whole[:-1].encode("utf-8")
    assert path.read_bytes() == (
        checked + f',"~crc32":"{zlib.crc32(checked):08x}"}}'.encode())
    assert len(data) > 3  # more than one shard of messages


def test_text_that_has_no_utf8_form_is_written_and_read_back_the_same(
        tmp_path: Path) -> None:
    # Guards a bug: a Maildir file named with bytes that are not UTF-8
    # gave a key holding lone surrogates, which no commit could write, so
    # every poll failed and nothing in its batch was ever handled.
    key = "maildir:1700000000.M1P1.host\udcff\udcfe"
    path = tmp_path / "mailbot.json"
    store = Store(path)
    store.record_message({**message(1), "key": key, "subject": "Café"})
    store.commit()
    assert Store(path).message_by_key(key)["subject"] == "Café"

    storage = JournalStorage(path)
    storage.read()
    storage.compact()
    assert json.loads(path.read_bytes())  # the snapshot is still JSON
    assert Store(path).message_by_key(key)["subject"] == "Café"


def test_a_snapshot_half_written_when_mailbot_was_killed_goes_at_start(
        tmp_path: Path) -> None:
    # Guards a bug: a compaction killed midway left a whole copy of the
    # record that no erasure, backup rotation or start ever removed.
    path = tmp_path / "mailbot.json"
    Store(path).close()
    half = tmp_path / ".mailbot-k1lled.tmp"
    half.write_text('{"messages.00000": {"1": {"from": "ann@x.org"', "utf-8")
    store = Store(path)
    store.lock()  # each start of a daemon folds the journal into a snapshot
    store.close()
    assert not half.exists()
    assert path.exists()


def test_clusters_are_found_by_their_lead_through_changes_and_undo(
        tmp_path: Path) -> None:
    """Finding a lead's clusters once read the whole table for every
    message; the lookup that replaced it must follow every change."""
    store = Store(tmp_path / "mailbot.json")
    lead = {"name": "Morag", "email": "morag@example.org"}
    first = store.add_cluster({"status": "active", "lead": lead})
    second = store.add_cluster({"status": "active",
                                "lead": {"name": "Ian", "email": "ian@example.org"}})
    store.commit()
    assert [c.doc_id for c in store.clusters_led_by("morag@example.org")] == [first]

    store.savepoint()
    store.update_cluster(second, {"lead": lead})
    assert [c.doc_id for c in store.clusters_led_by("morag@example.org")] == \
        [first, second]
    assert store.clusters_led_by("ian@example.org") == []
    store.rollback_to_savepoint()
    assert [c.doc_id for c in store.clusters_led_by("ian@example.org")] == [second]

    third = store.add_cluster({"status": "incomplete", "lead": lead})
    store.rollback()
    assert [c.doc_id for c in store.clusters_led_by("morag@example.org")] == [first]
    assert store.clusters.get(third) is None

    store.update_cluster(first, {"lead": {"name": "New", "email": "new@example.org"}})
    store.close()
    reopened = Store(tmp_path / "mailbot.json")
    assert [c.doc_id for c in reopened.clusters_led_by("new@example.org")] == [first]
    assert reopened.clusters_led_by("morag@example.org") == []


def test_clusters_are_found_by_status_as_it_changes(tmp_path: Path) -> None:
    """Validator assignment counted open clusters by reading every cluster;
    the lookup by status that replaced it must follow each change."""
    store = Store(tmp_path / "mailbot.json")
    lead = {"name": "Morag", "email": "morag@example.org"}
    one = store.add_cluster({"status": "active", "lead": lead})
    two = store.add_cluster({"status": "active", "lead": lead})
    store.commit()
    store.savepoint()
    store.update_cluster(one, {"status": "validator_assigned"})
    assert [c.doc_id for c in store.clusters_with_status("validator_assigned")] == [one]
    assert [c.doc_id for c in store.clusters_with_status("active")] == [two]
    store.rollback_to_savepoint()
    assert store.clusters_with_status("validator_assigned") == []
    store.update_cluster(two, {"status": "validator_assigned", "note": "x"})
    store.close()
    reopened = Store(tmp_path / "mailbot.json")
    assigned = reopened.clusters_with_status("validator_assigned")
    assert [c.doc_id for c in assigned] == [two]
    led = reopened.clusters_led_by("morag@example.org")
    assert [c.doc_id for c in led] == [one, two]


def test_a_commit_nested_too_deep_to_read_stops_start_up_with_advice(
        tmp_path: Path) -> None:
    # Guards a bug found so: the standard encoder writes lists nested a
    # little deeper than its reader follows, and reading such a commit
    # raised RecursionError instead of naming the backup to restore.
    path = tmp_path / "mailbot.json"
    store = Store(path)
    store.record_message(message(1))
    store.commit()
    store.close()
    deep = "[" * 5000 + "]" * 5000
    with open(journal_of(path), "ab") as journal:
        journal.write(f'{{"c":[["messages.00000","2",{{"x":{deep}}}]]}}\n'
                      .encode())
    with pytest.raises(DamagedRecordError, match="mailbot.json.journal"):
        JournalStorage(path).read()


def three_commits(path: Path) -> tuple[list[bytes], int]:
    """A journal of three commits, a message each: its lines, and which
    is the second message's."""
    store = Store(path)
    for n in range(1, 4):
        store.record_message(message(n))
        store.commit()
    store.close()
    lines = journal_of(path).read_bytes().splitlines(keepends=True)
    return lines, next(n for n, line in enumerate(lines) if b"maildir:2" in line)


@pytest.mark.parametrize("damage", [b"X", b"\r"])
def test_a_damaged_commit_before_others_stops_start_up(
        tmp_path: Path, damage: bytes) -> None:
    # Guards a bug found so: a whole journal line that could not be read
    # was taken for a torn last commit, and it and every commit after it
    # were dropped without a word; the mail they recorded was already
    # moved, so it was lost to the record.
    path = tmp_path / "mailbot.json"
    lines, second = three_commits(path)
    kept = sum(map(len, lines[:second]))
    # A byte changed: a letter, or a carriage return, which a reader
    # splitting at any line break took for the end of a torn commit.
    lines[second] = damage + lines[second][1:]
    journal_of(path).write_bytes(b"".join(lines))

    with pytest.raises(DamagedRecordError) as caught:
        Store(path)
    said = str(caught.value)
    assert f"commit {second + 1} cannot be read" in said
    assert f"truncate -s {kept} {journal_of(path)}" in said
    # The advice works: cut there, the first commit's message is all kept.
    os.truncate(journal_of(path), kept)
    assert [m["key"] for m in Store(path).all_messages()] == ["maildir:1"]


def test_a_commit_changed_after_it_was_written_stops_start_up(
        tmp_path: Path) -> None:
    # One letter changed: still JSON, so only its checksum tells.
    path = tmp_path / "mailbot.json"
    lines, second = three_commits(path)
    lines[second] = lines[second].replace(b"maildir:2", b"maildir:7")
    journal_of(path).write_bytes(b"".join(lines))

    with pytest.raises(DamagedRecordError) as caught:
        Store(path)
    said = str(caught.value)
    assert (f"commit {second + 1} cannot be read: its checksum does not "
            "match") in said
    assert f"truncate -s {sum(map(len, lines[:second]))}" in said


def test_a_snapshot_changed_after_it_was_written_names_the_last_backup(
        tmp_path: Path) -> None:
    path = tmp_path / "mailbot.json"
    for n in range(1, 3):
        store = Store(path)
        store.lock()
        store.record_message(message(n))
        store.close()
    store = Store(path)
    store.lock()  # the snapshot now holds both; backup .1 the first
    store.close()
    path.write_bytes(path.read_bytes().replace(b"maildir:2", b"maildir:7"))
    with pytest.raises(DamagedRecordError) as caught:
        Store(path)
    said = str(caught.value)
    assert "its checksum does not match" in said
    assert "mailbot.json.1" in said


def test_a_record_written_before_checksums_is_read(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.json"
    path.write_text(json.dumps({"messages.00000": {"1": message(1)}}))
    journal_of(path).write_text(json.dumps(
        {"c": [["messages.00000", "2", message(2)]]}) + "\n")
    store = Store(path)
    assert [m["key"] for m in store.all_messages()] == [
        "maildir:1", "maildir:2"]
    store.record_message(message(3))
    store.close()
    assert [m["key"] for m in Store(path).all_messages()] == [
        "maildir:1", "maildir:2", "maildir:3"]


@pytest.mark.parametrize(("damage", "said"), [
    ("removed", "missing"), ("emptied", "empty"), ("{}", "holds no record")])
def test_a_snapshot_gone_beside_its_backups_stops_start_up(
        tmp_path: Path, damage: str, said: str) -> None:
    # Guards a bug found so: with the snapshot removed or emptied, start-up
    # made a new, empty record, and later starts rotated every good
    # backup out.
    path = tmp_path / "mailbot.json"
    started(path, 3)  # and so two backups
    if damage == "removed":
        path.unlink()
    else:
        path.write_text("" if damage == "emptied" else damage)
    backups = {n: backup_of(path, n).read_bytes() for n in (1, 2)}

    with pytest.raises(DamagedRecordError, match=said) as caught:
        Store(path)
    assert f"the last good backup is {backup_of(path, 1)}" in str(caught.value)
    assert {n: backup_of(path, n).read_bytes() for n in (1, 2)} == backups


def test_a_compaction_the_disk_refuses_leaves_the_commit_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards a bug found so: the journal line was on disk when folding the
    # journal into the snapshot failed, yet the commit was reported failed
    # and memory rolled back behind the file.
    path = tmp_path / "mailbot.json"
    store = Store(path)
    monkeypatch.setattr("mailbot.storage.MIN_JOURNAL_BYTES", 0)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store._storage, "compact", full)
    store.record_message(message(1))
    store.commit()  # no error: the commit itself is on disk
    assert store.message_by_key("maildir:1") is not None
    assert Store(path).message_by_key("maildir:1") is not None


def test_a_commit_that_writes_a_record_of_no_sense_is_named(
        tmp_path: Path) -> None:
    # Guards a bug found so: a journal line of the right form holding a
    # cluster without its fields blamed the snapshot, whose restore would
    # have thrown the whole journal away for one line.
    path = tmp_path / "mailbot.json"
    store = Store(path)
    cluster_id = store.add_cluster({"name": "Glenbrae Cluster",
                                    "status": "active", "lead": {}})
    store.commit()
    store.close()
    good = journal_of(path).stat().st_size
    commits = len(journal_of(path).read_bytes().splitlines())
    with open(journal_of(path), "ab") as journal:
        journal.write(json.dumps({"c": [["clusters.00000", str(cluster_id),
                                         {"name": 5}]]}).encode() + b"\n")

    with pytest.raises(DamagedRecordError) as caught:
        Store(path)
    said = str(caught.value)
    assert said.startswith(f"{journal_of(path)} is damaged (commit "
                           f"{commits + 1} wrote clusters {cluster_id} has no")
    assert f"truncate -s {good} {journal_of(path)}" in said
    os.truncate(journal_of(path), good)
    assert Store(path).cluster(cluster_id)["name"] == "Glenbrae Cluster"


def test_a_compaction_failing_once_the_journal_is_emptied_pads_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guards a bug found so: when the disk failed just after the journal
    # was emptied, the next commit padded it back to its old length with
    # NUL bytes, and the next start-up refused the record as damaged.
    path = tmp_path / "mailbot.json"
    store = Store(path)
    store.record_message(message(1))
    store.commit()
    monkeypatch.setattr("mailbot.storage.MIN_JOURNAL_BYTES", 0)
    fchmod = os.fchmod
    failures = [OSError(errno.EIO, "Input/output error")]

    def once(fd: int, mode: int) -> None:
        if failures:
            raise failures.pop()
        fchmod(fd, mode)

    monkeypatch.setattr("mailbot.storage.os.fchmod", once)
    store.record_message(message(2))
    store.commit()  # folded into the snapshot, then the failure
    monkeypatch.setattr("mailbot.storage.MIN_JOURNAL_BYTES", 1 << 30)
    store.record_message(message(3))
    store.commit()
    store.close()

    assert b"\0" not in journal_of(path).read_bytes()
    assert [m["key"] for m in Store(path).all_messages()] == [
        "maildir:1", "maildir:2", "maildir:3"]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text() | st.integers(-9, 9), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_record_is_written_as_json_writes_it(value: object) -> None:
    # Text with lone surrogates, integers past 64 bits and keys that are
    # not text included: each reads back as json.dumps would have it.
    expected = json.loads(json.dumps(value))
    assert json.loads(_encoded(value)) == expected


def test_what_json_refuses_the_record_refuses() -> None:
    with pytest.raises(TypeError):
        _encoded({"when": datetime(2027, 1, 12, tzinfo=UTC)})


def _containers(value: object) -> list[object]:
    """Every dict and list in `value`, itself included, however deep."""
    found: list[object] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            found.append(item)
            stack.extend(item)
    return found


def _spoil(value: object) -> None:
    """Change every dict and list in `value` in place."""
    for item in _containers(value):
        if isinstance(item, dict):
            item["spoiled"] = True
        else:
            assert isinstance(item, list)
            item.append("spoiled")


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_undo_copy_is_equal_and_shares_nothing_that_changes(
        value: object) -> None:
    copied = json_copy(value)
    assert copied == value
    assert type(copied) is type(value)
    # No dict or list is shared, at any depth ...
    assert not {id(c) for c in _containers(copied)} & \
        {id(c) for c in _containers(value)}
    # ... so that changing either leaves the other as it was.
    as_text = json.dumps(value, sort_keys=False)
    _spoil(copied)
    assert json.dumps(value, sort_keys=False) == as_text
    again = json_copy(value)
    _spoil(value)
    assert json.dumps(again, sort_keys=False) == as_text


def test_the_undo_copy_of_what_is_not_json_is_deepcopys() -> None:
    inner = [1, {"a": [2]}]
    value = {"pair": (inner, "x"), "when": datetime(2027, 1, 12, tzinfo=UTC),
             "set": {1, 2}}
    copied = json_copy(value)
    assert copied == value
    assert copied["pair"][0] is not inner
    assert copied["pair"][0][1] is not inner[1]
    assert copied["set"] is not value["set"]


def test_a_document_is_read_as_tinydb_reads_it(tmp_path: Path) -> None:
    # ShardedTable.get reads the storage's memory itself: the same
    # documents as TinyDB's Table.get, each a copy of its own.
    store = Store(tmp_path / "mailbot.json")
    table: ShardedTable = store.messages
    ids = [store.record_message(message(n)) for n in range(1, 1203)]
    store.update_message(ids[700], {"outcome": "set_aside",
                                    "lifted": ["nomination-limit"]})
    for doc_id in [*ids[::97], ids[-1], ids[-1] + 1, 5000, 0, -1]:
        doc = table.get(doc_id)
        tiny = (table._shard(shard_name("messages", doc_id)).get(doc_id=doc_id)
                if doc_id >= 1 else None)
        assert doc == tiny
        if doc is not None:
            assert type(doc) is type(tiny)
            assert doc.doc_id == doc_id
            doc["outcome"] = "changed"
            assert table.get(doc_id) == tiny
    changed = table.get(ids[700])
    assert changed is not None and changed["lifted"] == ["nomination-limit"]
    store.commit()
    store.close()
    reopened = Store(tmp_path / "mailbot.json")
    assert [dict(m) for m in reopened.all_messages()] == [
        dict(store.messages.get(i)) for i in ids]
