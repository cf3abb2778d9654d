"""The record: one owner, atomic writes, and changes that either all reach
the disk or none do."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.errors import StoreLockedError
from mailbot.storage import DamagedRecordError
from mailbot.store import Store

NOW = datetime(2027, 1, 12, 9, 30, tzinfo=UTC)


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
    before = path.read_text()
    store.add_cluster({"name": "Uncommitted", "status": "active"})
    assert path.read_text() == before
    store.rollback()
    assert store.all_clusters() == []
    assert Store(path).all_clusters() == []


def test_a_failed_write_leaves_the_old_record_whole(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    store = Store(path)
    store.add_cluster({"name": "Kept", "status": "active"})
    store.commit()
    good = path.read_text()

    store.add_cluster({"name": "Broken", "when": NOW})  # not JSON-serialisable
    with pytest.raises(TypeError):
        store.commit()
    assert path.read_text() == good
    assert json.loads(good)["clusters"]
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
    # Memory does not run ahead of the file.
    assert [c["name"] for c in store.all_clusters()] == ["Kept"]


def test_a_second_owner_is_refused(tmp_path: Path) -> None:
    first = Store(tmp_path / "record.json")
    first.lock()
    second = Store(tmp_path / "record.json")
    with pytest.raises(StoreLockedError, match="another mailbot"):
        second.lock()
    first.close()
    second.lock()  # free once the first has gone
    second.close()


def test_a_damaged_record_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_text('{"clusters": {"1": {"name": "Glen')
    with pytest.raises(DamagedRecordError, match="record.json"):
        Store(path)


def test_a_key_is_queued_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "record.json")
    item = {"key": "invitation:1", "status": "pending", "not_before": "x",
            "message_id": "<a@b>"}
    assert store.queue_outgoing(dict(item)) is True
    assert store.queue_outgoing(dict(item)) is False
    assert len(store.outgoing) == 1


def test_the_file_carries_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    Store(path)
    meta = json.loads(path.read_text())["meta"]
    assert {"name": "schema", "version": 1} in meta.values()


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
    assert path.read_text() == content  # left as it was, for a person
