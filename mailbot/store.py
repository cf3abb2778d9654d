"""The record: every cluster, school, message and outgoing mail, in TinyDB.

The Store is the only code that touches the record. Changes collect in
memory and reach the disk together at `commit()`, so one message's effects
(the record, its history, the mail it queued and the note that it was
handled) are written in one atomic step, or, if the disk refuses, undone
in memory too. A commit may hold many messages: `savepoint()` before each
one and `rollback_to_savepoint()` if it fails undo that message alone,
keeping the ones before it in the same commit. Each commit writes only
the documents it changed (see storage.py), and lookups on the paths every
message takes go through in-memory indexes, so handling a message costs
the same whether the record holds a hundred messages or a hundred
thousand. A lock file keeps a second daemon off the same data.
"""

from __future__ import annotations

import copy
import fcntl
import gc
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB
from tinydb.table import Document

from mailbot import migrations
from mailbot.errors import DISK_FULL, StoreLockedError, TransientError
from mailbot.shards import ShardedTable
from mailbot.storage import DamagedRecordError, JournalStorage

log = logging.getLogger(__name__)

SCHEMA_VERSION = migrations.SCHEMA_VERSION

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

# Outgoing statuses that still need sending. "sending" marks the one
# message handed to the server when mailbot stopped: it may have arrived.
UNSENT = frozenset({"pending", "sending"})
# The meta entry of work that failed and has not worked since (digest).
TROUBLES = "troubles"

Q = Query()

# What every record of a table must hold for mailbot to work with it.
_REQUIRED = {
    "clusters": {"status", "lead"},
    "schools": {"cluster_id", "name", "status"},
    "outgoing": {"key", "status", "message_id"},
    "messages": {"key", "outcome"},
    "comments": {"school_id", "received_at", "text"},
}


def stamp(moment: datetime) -> str:
    """How times are kept in the record: ISO 8601 in UTC, to the second."""
    return moment.isoformat(timespec="seconds")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_file: Any = None
        self._storage = JournalStorage(path)
        with _collector_paused():
            self._open(path)

    def _open(self, path: Path) -> None:
        raw = self._storage.read() or {}
        _check_shape(self._storage, raw)
        raw, passed = migrations.migrate(raw)
        if passed:
            self._storage.write(raw)

        self.db = TinyDB(storage=_Existing(self._storage))  # type: ignore[arg-type]
        # (table, doc id) -> the document before this transaction touched
        # it, or None if the transaction created it; in the order first
        # touched.
        self._undo: dict[tuple[str, int], dict[str, Any] | None] = {}
        # The savepoint, if one is set: how many entries _undo had then,
        # the documents touched since as they were then, and each table's
        # last id then.
        self._mark: int | None = None
        self._since_mark: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._ids_at_mark: dict[str, int] = {}
        # Files written for what is not committed yet (copies of mail set
        # aside): made durable just before the commit that records them.
        self._unsynced: list[Path] = []
        self._open_tables()
        self._ids_at_commit = self._last_ids()
        if passed:
            log.warning("%s: record upgraded from schema %d to %d", path,
                        passed[0], SCHEMA_VERSION)
            self._storage.compact()  # the old file stays as a backup
        self._init_schema()

    def _open_tables(self) -> None:
        def table(name: str) -> ShardedTable:
            return ShardedTable(self.db, self._storage, name, self._track)

        self.clusters = table("clusters")
        self.schools = table("schools")
        self.events = table("events")
        self.messages = table("messages")
        self.outgoing = table("outgoing")
        self.addresses = table("addresses")
        self.meta = table("meta")
        # Each comment a school sent, apart from the school's document so
        # that a new comment writes only itself, however many came before.
        self.comments = table("comments")
        self._tables = {t.name: t for t in (
            self.clusters, self.schools, self.events, self.messages,
            self.outgoing, self.addresses, self.meta, self.comments)}
        self._index()

    def _index(self) -> None:
        """Build the lookups that each message needs from what is stored."""
        self._message_keys: dict[str, int] = {}
        self._message_ids: dict[str, int] = {}
        self._message_prints: dict[str, int] = {}
        for doc in self.messages.all():
            self._index_message(doc.doc_id, doc)
        self._outgoing_keys: dict[str, int] = {}
        self._outgoing_ids: dict[str, int] = {}
        self._pending: set[int] = set()
        self._replies: dict[str, list[str]] = defaultdict(list)
        for doc in self.outgoing.all():
            self._index_outgoing(doc.doc_id, doc)
        self._index_clusters()
        self._index_schools()
        self._index_comments()
        self._index_events()
        self._index_addresses()

    def _index_addresses(self) -> None:
        # The addresses marked undeliverable now: asked of every message.
        self._undeliverable = {str(a["email"]) for a in self.addresses.all()
                               if not a.get("cleared_at")}

    def _index_clusters(self) -> None:
        self._by_lead: dict[str, set[int]] = defaultdict(set)
        self._by_status: dict[str, set[int]] = defaultdict(set)
        self._cluster_keys: dict[int, tuple[str, str]] = {}
        for doc in self.clusters.all():
            self._index_cluster(doc.doc_id, doc)

    def _index_cluster(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        """(Re)file one cluster under its lead's address and its status."""
        old = self._cluster_keys.pop(doc_id, None)
        if old is not None:
            self._by_lead[old[0]].discard(doc_id)
            self._by_status[old[1]].discard(doc_id)
        lead = str((doc.get("lead") or {}).get("email") or "")
        status = str(doc.get("status") or "")
        self._cluster_keys[doc_id] = (lead, status)
        self._by_lead[lead].add(doc_id)
        self._by_status[status].add(doc_id)

    def _index_schools(self) -> None:
        self._by_contact: dict[str, set[int]] = defaultdict(set)
        self._by_accepted: dict[str, set[int]] = defaultdict(set)
        self._by_domain: dict[str, set[int]] = defaultdict(set)
        self._by_cluster: dict[int, set[int]] = defaultdict(set)
        for doc in self.schools.all():
            self._index_school(doc.doc_id, doc)

    def _index_school(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        if doc.get("contact_email"):
            self._by_contact[doc["contact_email"]].add(doc_id)
            self._by_domain[_domain(doc["contact_email"])].add(doc_id)
        for address in doc.get("contacts") or ():
            self._by_accepted[address].add(doc_id)
        self._by_cluster[doc["cluster_id"]].add(doc_id)

    def _index_comments(self) -> None:
        # school id -> its comments' ids, oldest first (ids only grow);
        # (school id, hash of text) -> the ids of comments with that text.
        self._comments_by_school: dict[int, list[int]] = defaultdict(list)
        self._comments_by_text: dict[tuple[int, int], list[int]] = \
            defaultdict(list)
        for doc in self.comments.all():
            self._index_comment(doc.doc_id, doc)
        for ids in self._comments_by_school.values():
            ids.sort()

    def _index_comment(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        self._comments_by_school[doc["school_id"]].append(doc_id)
        self._comments_by_text[doc["school_id"], hash(str(doc.get("text")))
                               ].append(doc_id)

    def _index_events(self) -> None:
        # school or cluster id -> its events' ids, oldest first.
        self._events_by_school: dict[int, list[int]] = defaultdict(list)
        self._events_by_cluster: dict[int, list[int]] = defaultdict(list)
        for doc in self.events.all():
            self._index_event(doc.doc_id, doc)
        for ids in (*self._events_by_school.values(),
                    *self._events_by_cluster.values()):
            ids.sort()

    def _index_event(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        if doc.get("school_id") is not None:
            self._events_by_school[doc["school_id"]].append(doc_id)
        if doc.get("cluster_id") is not None:
            self._events_by_cluster[doc["cluster_id"]].append(doc_id)

    def _index_message(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        self._message_keys[doc["key"]] = doc_id
        if doc.get("message_id"):
            self._message_ids[doc["message_id"]] = doc_id
        if doc.get("fingerprint"):
            self._message_prints[doc["fingerprint"]] = doc_id

    def _index_outgoing(self, doc_id: int, doc: Mapping[str, Any]) -> None:
        self._outgoing_keys[doc["key"]] = doc_id
        self._outgoing_ids[doc["message_id"]] = doc_id
        if doc.get("status") in UNSENT:
            self._pending.add(doc_id)
        else:
            self._pending.discard(doc_id)
        if doc.get("in_reply_to"):
            for address in doc.get("to", []):
                self._replies[address].append(doc["created_at"])

    # -- lifetime ------------------------------------------------------

    def lock(self) -> None:
        """Hold the data folder for this process; a second daemon is refused."""
        lock_path = self.path.with_suffix(".lock")
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        # A fresh snapshot at each start keeps the journal short and the
        # backups recent.
        self._storage.compact()

    def lock_fileno(self) -> int | None:
        """The descriptor holding the record's lock, if held: for a child
        process to close, so that the lock is this process's alone."""
        return self._lock_file.fileno() if self._lock_file is not None else None

    def commit(self) -> None:
        """Write every change since the last commit, as one journal line,
        or, if the disk refuses, forget them, so that memory never runs
        ahead of the file (a message whose record could not be written is
        not moved on). Ends the savepoint, if any."""
        try:
            self._sync_files()
        except BaseException:
            self.rollback()
            raise
        if not self._undo:
            self._end_savepoint()
            return
        changes = []
        for table, doc_id in self._undo:
            # The documents as stored, not copies: they are only written
            # out, by append, before anything can change them (two copies
            # of each document changed saved).
            shards = self._tables[table]
            changes.append((shards.shard_name(doc_id), str(doc_id),
                            shards.raw(doc_id)))
        try:
            self._storage.append(changes)
        except BaseException:
            self.rollback()
            raise
        self._undo.clear()
        self._end_savepoint()
        self._ids_at_commit = self._last_ids()

    def sync_with_commit(self, path: Path) -> None:
        """Have the next commit make `path`, a file written for what it
        records, durable before it writes: one wait for the disk per commit
        rather than one per file (a commit holds many messages)."""
        self._unsynced.append(path)

    def _sync_files(self) -> None:
        """fsync the files of the coming commit, then their folders. A disk
        full for now fails the commit (TransientError): it is made again
        once there is room. Another failure removes the file, with an
        error logged (what it holds may not be what was written), and the
        commit goes on without it."""
        paths, self._unsynced = self._unsynced, []
        folders: set[Path] = set()
        for path in paths:
            try:
                _fsync(path, os.O_RDONLY)
                folders.add(path.parent)
            except OSError as exc:
                if exc.errno in DISK_FULL:
                    raise TransientError(f"{path}: no room for it on the "
                                         f"disk: {exc}") from exc
                log.error("%s: not kept, the disk refused it: %s", path, exc)
                with suppress(OSError):
                    path.unlink(missing_ok=True)
        for folder in folders:
            try:
                _fsync(folder, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as exc:
                log.error("%s: its new files may not outlast a power cut: %s",
                          folder, exc)

    def rollback(self) -> None:
        """Undo every change not yet committed (after an error mid-message,
        or a commit the disk refused). Ends the savepoint, if any."""
        self._restore(self._undo, self._ids_at_commit)
        self._undo.clear()
        self._end_savepoint()

    def savepoint(self) -> None:
        """Mark the present state: `rollback_to_savepoint()` comes back to
        it, undoing only what changed since, while what changed before it
        stays, to be written at the next commit. One savepoint at a time:
        a new one replaces the last; a commit or rollback ends it."""
        self._mark = len(self._undo)
        self._since_mark.clear()
        self._ids_at_mark = self._last_ids()

    def rollback_to_savepoint(self) -> None:
        """Undo every change since `savepoint()`, documents and lookups
        alike; the savepoint stays set."""
        if self._mark is None:
            raise RuntimeError("rollback_to_savepoint without a savepoint")
        self._restore(self._since_mark, self._ids_at_mark)
        # What was first touched after the savepoint is as it was before
        # this transaction again: nothing to write for it.
        for key in list(self._undo)[self._mark:]:
            del self._undo[key]
        self._since_mark.clear()

    def _end_savepoint(self) -> None:
        self._mark = None
        self._since_mark.clear()
        self._ids_at_mark = {}

    def _last_ids(self) -> dict[str, int]:
        return {name: table.last_id for name, table in self._tables.items()}

    def _restore(self, before: Mapping[tuple[str, int], dict[str, Any] | None],
                 last_ids: Mapping[str, int]) -> None:
        """Put documents back as they were, give back the ids of those that
        were new, and bring the lookups in line with the documents."""
        for (table, doc_id), doc in before.items():
            self._tables[table].put(doc_id, doc)
        for name, last_id in last_ids.items():
            self._tables[name].last_id = last_id
        touched = {table for table, _ in before}
        if touched & {"messages", "outgoing"}:
            self._index()
            return
        if "clusters" in touched:
            self._index_clusters()
        if "schools" in touched:
            self._index_schools()
        if "comments" in touched:
            self._index_comments()
        if "events" in touched:
            self._index_events()
        if "addresses" in touched:
            self._index_addresses()

    def close(self) -> None:
        self.commit()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _track(self, table: str, doc_id: int,
               before: Mapping[str, Any] | None) -> None:
        key = (table, doc_id)
        if key not in self._undo:
            self._undo[key] = (json_copy(dict(before))
                               if before is not None else None)
            if self._mark is not None:
                # The same copy serves both: neither is ever changed.
                self._since_mark[key] = self._undo[key]
        elif self._mark is not None and key not in self._since_mark:
            self._since_mark[key] = (json_copy(dict(before))
                                     if before is not None else None)

    def _init_schema(self) -> None:
        if self.meta.first(Q.name == "schema") is None:
            self.meta.insert({"name": "schema", "version": SCHEMA_VERSION})
            self.meta.insert({"name": "instance", "value": uuid.uuid4().hex})
            self.commit()

    def instance_id(self) -> str:
        """A random id made with the record, unique to it."""
        return str(self.get_meta("instance", ""))

    # -- clusters and schools -----------------------------------------

    def add_cluster(self, fields: dict[str, Any]) -> int:
        doc_id = self.clusters.insert(fields)
        self._index_cluster(doc_id, fields)
        return doc_id

    def cluster(self, cluster_id: int) -> Document:
        return _found(self.clusters.get(cluster_id), "cluster", cluster_id)

    def update_cluster(self, cluster_id: int, fields: dict[str, Any]) -> None:
        self.clusters.update(cluster_id, fields)
        if fields.keys() & {"lead", "status"}:
            self._index_cluster(cluster_id, self.cluster(cluster_id))

    def all_clusters(self) -> list[Document]:
        return self.clusters.all()

    def clusters_named(self, name: str) -> list[Document]:
        key = " ".join(name.lower().split())
        return [c for c in self.clusters.all()
                if " ".join(str(c.get("name") or "").lower().split()) == key]

    def clusters_led_by(self, email: str) -> list[Document]:
        return self._clusters(self._by_lead.get(email, ()) if email else ())

    def clusters_with_status(self, status: str) -> list[Document]:
        return self._clusters(self._by_status.get(status, ()))

    def _clusters(self, ids: Iterable[int]) -> list[Document]:
        found = (self.clusters.get(i) for i in sorted(ids))
        return [c for c in found if c is not None]

    def add_school(self, fields: dict[str, Any]) -> int:
        doc_id = self.schools.insert(fields)
        self._index_school(doc_id, fields)
        return doc_id

    def school(self, school_id: int) -> Document:
        return _found(self.schools.get(school_id), "school", school_id)

    def update_school(self, school_id: int, fields: dict[str, Any]) -> None:
        self.schools.update(school_id, fields)
        if fields.keys() & {"contact_email", "contacts", "cluster_id"}:
            self._index_schools()

    def schools_of(self, cluster_id: int) -> list[Document]:
        return self._schools(self._by_cluster.get(cluster_id, ()))

    def schools_with_contact(self, email: str) -> list[Document]:
        found = self._schools(self._by_contact.get(email, ()))
        return [s for s in found if s.get("contact_email") == email]

    # A school's mail may come from its contact's address or from another
    # that staff accepted for it (Workflow.accept_contact), kept in the
    # school's "contacts". Only the contact's address is written to, and
    # only its bounces mark the school undeliverable.

    @staticmethod
    def addresses_of(school: Mapping[str, Any]) -> list[str]:
        """The addresses that write for a school: its contact's first,
        then those accepted for it."""
        contact = school.get("contact_email")
        return [*([contact] if contact else []),
                *(a for a in school.get("contacts") or () if a != contact)]

    def schools_accepting(self, email: str) -> list[Document]:
        """The schools for which `email` writes, by id."""
        ids = self._by_contact.get(email, set()) | \
            self._by_accepted.get(email, set())
        return [s for s in self._schools(ids) if email in self.addresses_of(s)]

    def schools_at_domain(self, domain: str) -> list[Document]:
        """The schools whose contact's address is at `domain`, by id."""
        found = self._schools(self._by_domain.get(domain.lower(), ()))
        return [s for s in found
                if _domain(str(s.get("contact_email") or "")) == domain.lower()]

    def _schools(self, ids: Iterable[int]) -> list[Document]:
        found = (self.schools.get(doc_id) for doc_id in sorted(ids))
        return [doc for doc in found if doc is not None]

    def all_schools(self) -> list[Document]:
        return self.schools.all()

    # -- comments -------------------------------------------------------

    def add_comment(self, school_id: int, fields: dict[str, Any]) -> int:
        """Keep one comment a school sent (received_at, text, message_id)."""
        doc = {**fields, "school_id": school_id}
        doc_id = self.comments.insert(doc)
        self._index_comment(doc_id, doc)
        return doc_id

    def comments_of(self, school_id: int, latest: int | None = None
                    ) -> list[Document]:
        """The comments a school sent, oldest first; with `latest`, only
        that many of the last."""
        ids = self._comments_by_school.get(school_id, [])
        if latest is not None:
            ids = ids[-latest:] if latest > 0 else []
        return self._comments(ids, school_id)

    def comment_count(self, school_id: int) -> int:
        return len(self._comments_by_school.get(school_id, ()))

    def has_comment(self, school_id: int, text: str) -> bool:
        """Whether the school sent a comment with exactly this text."""
        return any(doc.get("text") == text for doc in self._comments(
            self._comments_by_text.get((school_id, hash(text)), ()), school_id))

    def _comments(self, ids: Iterable[int], school_id: int) -> list[Document]:
        found = (self.comments.get(doc_id) for doc_id in ids)
        # A comment erased or moved since it was filed is not the school's.
        return [doc for doc in found
                if doc is not None and doc.get("school_id") == school_id]

    # -- history -------------------------------------------------------

    def add_event(self, at: datetime, event: str, *, cluster_id: int | None = None,
                  school_id: int | None = None, message_id: str = "",
                  detail: str = "") -> None:
        fields = {
            "at": stamp(at), "event": event, "cluster_id": cluster_id,
            "school_id": school_id, "message_id": message_id, "detail": detail,
        }
        self._index_event(self.events.insert(fields), fields)

    def events_of(self, kinds: Iterable[str]) -> list[Document]:
        """Every event of these kinds, oldest first."""
        wanted = set(kinds)
        return self.events.search(Q.event.test(lambda kind: kind in wanted))

    def history_of_school(self, school_id: int) -> list[Document]:
        """The school's events, oldest first."""
        return self._events(self._events_by_school.get(school_id, ()),
                            "school_id", school_id)

    def history_of_cluster(self, cluster_id: int) -> list[Document]:
        """The cluster's events (its schools' too), oldest first."""
        return self._events(self._events_by_cluster.get(cluster_id, ()),
                            "cluster_id", cluster_id)

    def _events(self, ids: Iterable[int], field: str, value: int
                ) -> list[Document]:
        found = (self.events.get(doc_id) for doc_id in ids)
        # An event whose field was changed since is not the owner's.
        return [doc for doc in found
                if doc is not None and doc.get(field) == value]

    def outgoing_for_school(self, school_id: int) -> list[Document]:
        return self.outgoing.search(Q.school_id == school_id)

    # -- incoming messages --------------------------------------------

    def message_by_key(self, key: str) -> Document | None:
        return self._indexed(self.messages, self._message_keys, "key", key)

    def message_by_fingerprint(self, fingerprint: str) -> Document | None:
        """The message last recorded with these very bytes (None if its
        digest was erased since)."""
        if not fingerprint:
            return None
        return self._indexed(self.messages, self._message_prints,
                             "fingerprint", fingerprint)

    def message_by_id(self, message_id: str) -> Document | None:
        if not message_id:
            return None
        return self._indexed(self.messages, self._message_ids, "message_id",
                             message_id)

    def record_message(self, fields: dict[str, Any]) -> int:
        doc_id = self.messages.insert(fields)
        self._index_message(doc_id, fields)
        return doc_id

    def update_message(self, doc_id: int, fields: dict[str, Any]) -> None:
        self.messages.update(doc_id, fields)
        self._index_message(doc_id, self.messages.get(doc_id) or fields)

    def all_messages(self) -> list[Document]:
        return self.messages.all()

    def set_aside_messages(self) -> list[Document]:
        return self.messages.search(Q.outcome == "set_aside")

    # -- outgoing mail ------------------------------------------------

    def outgoing_by_key(self, key: str) -> Document | None:
        return self._indexed(self.outgoing, self._outgoing_keys, "key", key)

    def outgoing_by_message_id(self, message_id: str) -> Document | None:
        return self._indexed(self.outgoing, self._outgoing_ids, "message_id",
                             message_id)

    def queue_outgoing(self, fields: dict[str, Any]) -> bool:
        """Queue a message unless one with the same key exists; True if queued."""
        if self.outgoing_by_key(fields["key"]) is not None:
            return False
        doc_id = self.outgoing.insert(fields)
        self._index_outgoing(doc_id, fields)
        return True

    def replies_to_since(self, address: str, since: str) -> int:
        """How many answers to incoming mail went to `address` since then."""
        return sum(1 for at in self._replies.get(address, ()) if at >= since)

    def reply_limited_since(self, since: str) -> list[Document]:
        return self.events.search((Q.event == "reply-limit") & (Q.at > since))

    def pending_outgoing(self, now: datetime) -> list[Document]:
        due = stamp(now)
        return [doc for doc in self.unsent_outgoing()
                if doc["not_before"] <= due]

    def unsent_outgoing(self) -> list[Document]:
        """Every message queued and not yet sent, due or not."""
        found = [self.outgoing.get(doc_id) for doc_id in sorted(self._pending)]
        return [doc for doc in found if doc is not None]

    def all_outgoing(self) -> list[Document]:
        return self.outgoing.all()

    def failed_outgoing(self) -> list[Document]:
        return self.outgoing.search(Q.status == "failed")

    def update_outgoing(self, outgoing_id: int, fields: dict[str, Any]) -> None:
        if fields.get("status", "pending") not in UNSENT:
            self._pending.discard(outgoing_id)
        if fields.get("status") == "sent":
            # Once sent, the message itself is in the outbox or with the
            # server; the record keeps who, what and when.
            fields = {**fields, "raw": ""}
        self.outgoing.update(outgoing_id, fields)

    # -- addresses ----------------------------------------------------

    def mark_undeliverable(self, email: str, at: datetime, reason: str,
                           message_id: str) -> bool:
        """Note that mail to `email` bounces; True if this is news."""
        if self.is_undeliverable(email):
            return False
        self.addresses.insert({"email": email, "since": stamp(at),
                               "reason": reason, "message_id": message_id})
        self._undeliverable.add(email)
        return True

    def undeliverable(self) -> list[Document]:
        """The addresses marked undeliverable now (not those cleared)."""
        return [a for a in self.addresses.all() if not a.get("cleared_at")]

    def is_undeliverable(self, email: str) -> bool:
        return email in self._undeliverable

    def clear_undeliverable(self, email: str, at: datetime, why: str) -> bool:
        """Lift the mark from `email`, saying when and why (the mark stays
        in the record as history); False if it had none."""
        if email not in self._undeliverable:
            return False
        for mark in self.addresses.search(Q.email == email):
            if not mark.get("cleared_at"):
                self.addresses.update(mark.doc_id, {"cleared_at": stamp(at),
                                                    "cleared_because": why})
        self._undeliverable.discard(email)
        return True

    # -- small settings -----------------------------------------------

    # -- work that failed, for the digest --------------------------------

    def note_trouble(self, what: str, exc: Exception, now: datetime) -> None:
        """Record, and commit, that `what` (e.g. "reminders for Glenbrae
        Cluster (#1)") failed with `exc`: the digest shows it until it
        works again. Written only when the failure or its message changes.
        A report only: if the disk refuses it, the log has said it."""
        error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        troubles = dict(self.get_meta(TROUBLES, {}))
        since = troubles.get(what, {}).get("since", stamp(now))
        if troubles.get(what) != {"since": since, "error": error}:
            troubles[what] = {"since": since, "error": error}
            self.set_meta(TROUBLES, troubles)
            try:
                self.commit()
            except Exception:
                log.exception("could not record that %s failed", what)

    @contextmanager
    def attempt(self, what: str, now: datetime) -> Iterator[None]:
        """Work on the record that one failure must not stop the rest of:
        committed if it ends well; else undone, logged and noted for the
        digest (note_trouble), and not raised."""
        try:
            yield
        except Exception as exc:
            self.rollback()
            log.exception("%s failed", what)
            self.note_trouble(what, exc, now)
        else:
            self.clear_trouble(what)
            self.commit()

    def clear_trouble(self, what: str) -> None:
        """`what` worked: forget that it failed (written at the next
        commit)."""
        troubles = self.get_meta(TROUBLES, {})
        if what in troubles:
            self.set_meta(TROUBLES, {k: v for k, v in troubles.items()
                                     if k != what})

    def troubles(self) -> dict[str, dict[str, str]]:
        """What failed and has not worked since: since when, and why."""
        return dict(self.get_meta(TROUBLES, {}))

    def get_meta(self, name: str, default: Any = None) -> Any:
        found = self.meta.first(Q.name == name)
        return found.get("value", default) if found is not None else default

    def set_meta(self, name: str, value: Any) -> None:
        found = self.meta.first(Q.name == name)
        if found is None:
            self.meta.insert({"name": name, "value": value})
        elif found.get("value") != value:
            self.meta.update(found.doc_id, {"value": value})

    # -- helpers -------------------------------------------------------

    @staticmethod
    def _indexed(table: ShardedTable, index: dict[str, int], field: str,
                 value: str) -> Document | None:
        doc_id = index.get(value)
        if doc_id is None:
            return None
        doc = table.get(doc_id)
        # The index may be older than a change to the field itself.
        return doc if doc is not None and doc.get(field) == value else None


class _Existing:
    """Hands TinyDB the storage the Store already opened (TinyDB wants a
    class to call, not an object)."""

    def __init__(self, storage: JournalStorage) -> None:
        self.storage = storage

    def __call__(self) -> JournalStorage:
        return self.storage


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: reading a record and
    indexing it makes millions of dicts and lists, none of them garbage,
    and each collection on the way looks at all made so far (a record of
    100,000 messages was read through ten full collections)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def json_copy(value: Any) -> Any:
    """A copy of `value` as deep as copy.deepcopy's, equal to it and sharing
    no dict or list with it, made for what the record holds: dicts, lists,
    text, numbers, booleans and None, copied here (measured: 1.4
    microseconds for a school's or a cluster's document, against 6.1 by
    deepcopy, which looks up how to copy each value and keeps a memo of
    all it copied).
    Anything else (a tuple, a Document, a set) goes to deepcopy, as
    before. The undo log copies each document a transaction changes."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _ATOMS else json_copy(item)
                for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _ATOMS else json_copy(item)
                for item in value]
    if kind in _ATOMS:
        return value
    return copy.deepcopy(value)


# What json_copy hands back as it is: immutable, so a copy is the value.
_ATOMS = frozenset({str, int, float, bool, type(None)})


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _found(doc: Document | None, what: str, doc_id: int) -> Document:
    if doc is None:
        raise KeyError(f"no {what} {doc_id}")
    return doc


def _check_shape(storage: JournalStorage, raw: dict[str, Any]) -> None:
    """Refuse a record that is JSON but not mailbot's, before any message is
    handled against it; name the journal commit that wrote the document
    that makes no sense, if one did, or else the snapshot."""
    for table, docs in raw.items():
        if not isinstance(docs, dict) or not all(
                isinstance(doc, dict) for doc in docs.values()):
            raise DamagedRecordError(storage.path, f"table {table!r} is not "
                                     "a set of records")
    for table, docs in raw.items():
        fields = _REQUIRED.get(table.split(".")[0], set())
        for doc_id, doc in docs.items():
            missing = fields - set(doc)
            if missing:
                detail = (f"{table.split('.')[0]} {doc_id} has no "
                          + ", ".join(sorted(missing)))
                commit = storage.last_commit_of(table, doc_id)
                if commit is not None:
                    raise storage.damaged_commit(*commit, f"wrote {detail}")
                raise DamagedRecordError(storage.path, detail)


# -- privacy ---------------------------------------------------------------
# What subject access, erasure and retention (mailbot/privacy.py) need of
# the record. Changes made here are tracked like any other: they reach the
# disk at the Store's next commit, or are undone by its rollback.

# The tables that may hold personal data (meta holds only settings).
PERSONAL_TABLES = ("clusters", "schools", "messages", "outgoing", "events",
                   "addresses", "comments")


def personal_documents(store: Store) -> dict[str, list[Document]]:
    """Every document of every table that may hold personal data."""
    return {name: store._tables[name].all() for name in PERSONAL_TABLES}


def replace_personal(store: Store, table: str, doc_id: int,
                     fields: dict[str, Any]) -> None:
    """Set fields of one document of a personal table. The lookups may be
    stale until `reindex_after_erasure`."""
    if table not in PERSONAL_TABLES:
        raise ValueError(f"{table!r} holds no personal data")
    store._tables[table].update(doc_id, fields)


def reindex_after_erasure(store: Store) -> None:
    """Bring the in-memory lookups in line with the documents again."""
    store._index()


def compact_now(store: Store) -> None:
    """Rewrite the snapshot from memory and empty the journal at once (the
    snapshot it replaces becomes backup .1). Commits first."""
    store.commit()
    store._storage.compact()


def expire_outgoing_raw(store: Store, before: datetime) -> int:
    """Drop the text of outgoing mail done with (sent, failed, suppressed)
    since before `before`, keeping who, what and when; how many."""
    cutoff = stamp(before)
    count = 0
    for doc in store.outgoing.all():
        if not doc.get("raw") or doc.get("status") in UNSENT:
            continue
        if str(doc.get("sent_at") or doc.get("created_at") or "") < cutoff:
            store.outgoing.update(doc.doc_id, {"raw": ""})
            count += 1
    return count


def oldest_message_at(store: Store) -> str | None:
    """When the oldest message in the record was received, or None."""
    times = [str(m["received_at"]) for m in store.messages.all()
             if m.get("received_at")]
    return min(times) if times else None
