"""The record: every cluster, school, message and outgoing mail, in TinyDB.

The Store is the only code that touches the TinyDB file. Changes collect in
memory and reach the disk together at `commit()`, so one message's effects
(the record, its history, the mail it queued and the note that it was
handled) are written in one atomic step. A lock file keeps a second daemon
off the same data.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document

from mailbot.errors import StoreLockedError
from mailbot.storage import BufferedJSONStorage, DamagedRecordError

SCHEMA_VERSION = 1

# School statuses, as exported.
INVITED = "invited"
SELF_REVIEW_COMPLETE = "self_review_complete"
VISIT_REQUESTED = "visit_requested"
AWARDED = "awarded"
ALREADY_AWARDED = "already_awarded"
COMPLETE_STATUSES = frozenset(
    {SELF_REVIEW_COMPLETE, VISIT_REQUESTED, AWARDED, ALREADY_AWARDED})

# Cluster statuses.
INCOMPLETE = "incomplete"
ACTIVE = "active"
AWAITING_VALIDATOR = "awaiting_validator"
VALIDATOR_ASSIGNED = "validator_assigned"

Q = Query()

# What every record of a table must hold for mailbot to work with it.
_REQUIRED = {
    "clusters": {"status", "lead"},
    "schools": {"cluster_id", "name", "status"},
    "outgoing": {"key", "status", "message_id"},
    "messages": {"key", "outcome"},
}


def stamp(moment: datetime) -> str:
    """How times are kept in the record: ISO 8601 in UTC, to the second."""
    return moment.isoformat(timespec="seconds")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._storage: BufferedJSONStorage | None = None
        self._lock_file: Any = None

        def make_storage() -> BufferedJSONStorage:
            self._storage = BufferedJSONStorage(path)
            return self._storage

        self.db = TinyDB(storage=make_storage)  # type: ignore[arg-type]
        self.clusters = self.db.table("clusters")
        self.schools = self.db.table("schools")
        self.events = self.db.table("events")
        self.messages = self.db.table("messages")
        self.outgoing = self.db.table("outgoing")
        self.addresses = self.db.table("addresses")
        self.meta = self.db.table("meta")
        self._check_shape()
        self._init_schema()

    # -- lifetime ------------------------------------------------------

    def lock(self) -> None:
        """Hold the data folder for this process; a second daemon is refused."""
        lock_path = self.path.with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreLockedError(lock_path, holder) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def commit(self) -> None:
        """Write every change since the last commit, or, if the disk
        refuses, forget them, so that memory never runs ahead of the file
        (a message whose record could not be written is not moved on)."""
        assert self._storage is not None
        try:
            self._storage.flush()
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        """Drop changes not yet committed (after an error mid-message)."""
        assert self._storage is not None
        self._storage.discard()
        for table in (self.clusters, self.schools, self.events, self.messages,
                      self.outgoing, self.addresses, self.meta):
            table.clear_cache()
            table._next_id = None  # recount ids from what is on disk

    def close(self) -> None:
        self.commit()
        self.db.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _check_shape(self) -> None:
        """Refuse a record that is JSON but not mailbot's, before any
        message is handled against it."""
        assert self._storage is not None
        data = self._storage.read() or {}
        for table, docs in data.items():
            if not isinstance(docs, dict) or not all(
                    isinstance(doc, dict) for doc in docs.values()):
                raise DamagedRecordError(self.path, f"table {table!r} is not "
                                         "a set of records")
        for key, fields in _REQUIRED.items():
            for doc_id, doc in data.get(key, {}).items():
                missing = fields - set(doc)
                if missing:
                    raise DamagedRecordError(
                        self.path, f"{key} {doc_id} has no "
                        + ", ".join(sorted(missing)))

    def _init_schema(self) -> None:
        if not self.meta.get(Q.name == "schema"):
            self.meta.insert({"name": "schema", "version": SCHEMA_VERSION})
            self.meta.insert({"name": "instance", "value": uuid.uuid4().hex})
            self.commit()

    def instance_id(self) -> str:
        """A random id made with the record, unique to it."""
        return str(self.get_meta("instance", ""))

    # -- clusters and schools -----------------------------------------

    def add_cluster(self, fields: dict[str, Any]) -> int:
        return self.clusters.insert(fields)

    def cluster(self, cluster_id: int) -> Document:
        found = self.clusters.get(doc_id=cluster_id)
        if not isinstance(found, Document):
            raise KeyError(f"no cluster {cluster_id}")
        return found

    def update_cluster(self, cluster_id: int, fields: dict[str, Any]) -> None:
        self.clusters.update(fields, doc_ids=[cluster_id])

    def all_clusters(self) -> list[Document]:
        return self.clusters.all()

    def clusters_named(self, name: str) -> list[Document]:
        key = " ".join(name.lower().split())
        return [c for c in self.clusters.all()
                if " ".join(str(c.get("name") or "").lower().split()) == key]

    def clusters_led_by(self, email: str) -> list[Document]:
        return self.clusters.search(Q.lead.email == email)

    def add_school(self, fields: dict[str, Any]) -> int:
        return self.schools.insert(fields)

    def school(self, school_id: int) -> Document:
        found = self.schools.get(doc_id=school_id)
        if not isinstance(found, Document):
            raise KeyError(f"no school {school_id}")
        return found

    def update_school(self, school_id: int, fields: dict[str, Any]) -> None:
        self.schools.update(fields, doc_ids=[school_id])

    def schools_of(self, cluster_id: int) -> list[Document]:
        return sorted(self.schools.search(Q.cluster_id == cluster_id),
                      key=lambda s: s.doc_id)

    def schools_with_contact(self, email: str) -> list[Document]:
        return self.schools.search(Q.contact_email == email)

    def all_schools(self) -> list[Document]:
        return self.schools.all()

    # -- history -------------------------------------------------------

    def add_event(self, at: datetime, event: str, *, cluster_id: int | None = None,
                  school_id: int | None = None, message_id: str = "",
                  detail: str = "") -> None:
        self.events.insert({
            "at": stamp(at), "event": event, "cluster_id": cluster_id,
            "school_id": school_id, "message_id": message_id, "detail": detail,
        })

    def history_of_school(self, school_id: int) -> list[Document]:
        return self.events.search(Q.school_id == school_id)

    def history_of_cluster(self, cluster_id: int) -> list[Document]:
        return self.events.search(Q.cluster_id == cluster_id)

    def outgoing_for_school(self, school_id: int) -> list[Document]:
        return self.outgoing.search(Q.school_id == school_id)

    # -- incoming messages --------------------------------------------

    def message_by_key(self, key: str) -> Document | None:
        found = self.messages.get(Q.key == key)
        return found if isinstance(found, Document) else None

    def message_by_id(self, message_id: str) -> Document | None:
        if not message_id:
            return None
        found = self.messages.get(Q.message_id == message_id)
        return found if isinstance(found, Document) else None

    def record_message(self, fields: dict[str, Any]) -> None:
        self.messages.insert(fields)

    def set_aside_messages(self) -> list[Document]:
        return self.messages.search(Q.outcome == "set_aside")

    # -- outgoing mail ------------------------------------------------

    def outgoing_by_key(self, key: str) -> Document | None:
        found = self.outgoing.get(Q.key == key)
        return found if isinstance(found, Document) else None

    def outgoing_by_message_id(self, message_id: str) -> Document | None:
        found = self.outgoing.get(Q.message_id == message_id)
        return found if isinstance(found, Document) else None

    def queue_outgoing(self, fields: dict[str, Any]) -> bool:
        """Queue a message unless one with the same key exists; True if queued."""
        if self.outgoing_by_key(fields["key"]) is not None:
            return False
        self.outgoing.insert(fields)
        return True

    def replies_to_since(self, address: str, since: str) -> int:
        """How many answers to incoming mail went to `address` since then."""
        return self.outgoing.count(
            (Q.created_at >= since) & Q.to.any([address])
            & Q.in_reply_to.exists() & (Q.in_reply_to != ""))

    def reply_limited_since(self, since: str) -> list[Document]:
        return self.events.search((Q.event == "reply-limit")
                                  & (Q.at > since))

    def pending_outgoing(self, now: datetime) -> list[Document]:
        due = stamp(now)
        return sorted(
            self.outgoing.search((Q.status == "pending") & (Q.not_before <= due)),
            key=lambda o: o.doc_id)

    def failed_outgoing(self) -> list[Document]:
        return self.outgoing.search(Q.status == "failed")

    def update_outgoing(self, outgoing_id: int, fields: dict[str, Any]) -> None:
        self.outgoing.update(fields, doc_ids=[outgoing_id])

    # -- addresses ----------------------------------------------------

    def mark_undeliverable(self, email: str, at: datetime, reason: str,
                           message_id: str) -> bool:
        """Note that mail to `email` bounces; True if this is news."""
        if self.addresses.get(Q.email == email):
            return False
        self.addresses.insert({"email": email, "since": stamp(at),
                               "reason": reason, "message_id": message_id})
        return True

    def undeliverable(self) -> list[Document]:
        return self.addresses.all()

    def is_undeliverable(self, email: str) -> bool:
        return self.addresses.contains(Q.email == email)

    # -- small settings -----------------------------------------------

    def get_meta(self, name: str, default: Any = None) -> Any:
        found = self.meta.get(Q.name == name)
        return found.get("value", default) if isinstance(found, Document) else default

    def set_meta(self, name: str, value: Any) -> None:
        self.meta.upsert({"name": name, "value": value}, Q.name == name)
