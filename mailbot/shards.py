"""A table of the record, kept as TinyDB tables of bounded size.

TinyDB rebuilds a whole table in memory on every write, so a table that
grows with every message (the messages handled, the history, the mail
sent) would make each message dearer than the last. A ShardedTable keeps
its documents in TinyDB tables of at most SHARD documents each, named
"<table>.<n>"; document n lives in shard (n - 1) // SHARD, so its id tells
where it is. Every write is reported to the Store first, which keeps what
is needed to commit it or undo it.

Reads go through TinyDB's tables. Writes set the one document in the
storage's memory directly: TinyDB's own write path copies the whole
table twice (its ids to int and back) for each document written, which
made every insert or update cost as much as SHARD documents.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.table import Document, Table

from mailbot.storage import JournalStorage

SHARD = 500

Track = Callable[[str, int, Mapping[str, Any] | None], None]


def shard_name(table: str, doc_id: int) -> str:
    return f"{table}.{(doc_id - 1) // SHARD:05d}"


class ShardedTable:
    def __init__(self, db: TinyDB, storage: JournalStorage, name: str,
                 track: Track) -> None:
        self.db = db
        self.storage = storage
        self.name = name
        self._track = track
        self._shards: dict[str, Table] = {}
        self._names: list[str] = []  # this table's shards, in order
        # Shard number -> its name, worked out once each (shard_name
        # formats text; it was asked about 24 times a message).
        self._name_of: dict[int, str] = {}
        prefix = f"{name}."
        self._last_id = 0
        for table in sorted(db.tables()):
            if table.startswith(prefix) and table[len(prefix):].isdigit():
                shard = self._shard(table)
                ids = list(shard._read_table())
                if ids:
                    self._last_id = max(self._last_id, *map(int, ids))

    def _shard(self, name: str) -> Table:
        if name not in self._shards:
            self._shards[name] = self.db.table(name, cache_size=0)
            self._names = sorted(self._shards)
        return self._shards[name]

    def _shard_of(self, doc_id: int) -> Table:
        return self._shard(self.shard_name(doc_id))

    def shard_name(self, doc_id: int) -> str:
        """shard_name(self.name, doc_id), remembered."""
        number = (doc_id - 1) // SHARD
        name = self._name_of.get(number)
        if name is None:
            name = self._name_of[number] = shard_name(self.name, doc_id)
        return name

    def shards(self) -> Iterator[Table]:
        for name in self._names:
            yield self._shards[name]

    # -- reading -------------------------------------------------------

    def get(self, doc_id: int) -> Document | None:
        """The document, as a copy (a Document, as TinyDB's Table.get
        gives), or None.

        Read from the storage's memory directly: what TinyDB's Table.get
        does for an id (look the document up by its id as text in the
        shard's table and copy it into a Document), without its layers
        (measured: 1.1 microseconds a lookup against 1.9; a message makes
        16 or so)."""
        if doc_id < 1:
            return None
        raw = self.raw(doc_id)
        return Document(raw, doc_id) if raw is not None else None

    def raw(self, doc_id: int) -> dict[str, Any] | None:
        """The document as stored, not a copy: to read only, never to
        change or keep (get() gives a copy)."""
        docs = (self.storage.read() or {}).get(self.shard_name(doc_id))
        return docs.get(str(doc_id)) if docs is not None else None

    def all(self) -> list[Document]:
        return [doc for shard in self.shards() for doc in shard.all()]

    def search(self, cond: QueryLike) -> list[Document]:
        return [doc for shard in self.shards() for doc in shard.search(cond)]

    def first(self, cond: QueryLike) -> Document | None:
        for shard in self.shards():
            found = shard.get(cond)
            if isinstance(found, Document):
                return found
        return None

    def count(self, cond: QueryLike) -> int:
        return sum(shard.count(cond) for shard in self.shards())

    def __len__(self) -> int:
        return sum(len(shard) for shard in self.shards())

    # -- writing -------------------------------------------------------

    @property
    def last_id(self) -> int:
        """The highest document id given out so far."""
        return self._last_id

    @last_id.setter
    def last_id(self, value: int) -> None:
        # Only to take back ids given to documents an undo removed.
        self._last_id = value

    def insert(self, doc: Mapping[str, Any]) -> int:
        self._last_id += 1
        doc_id = self._last_id
        self._track(self.name, doc_id, None)
        self._write(doc_id, dict(doc))
        return doc_id

    def update(self, doc_id: int, fields: Mapping[str, Any]) -> None:
        current = self.get(doc_id)
        if current is None:
            raise KeyError(f"no {self.name} {doc_id}")
        self._track(self.name, doc_id, current)
        self._write(doc_id, {**current, **fields})

    def put(self, doc_id: int, doc: Mapping[str, Any] | None) -> None:
        """Set a document whole, or remove it; not reported (for undo)."""
        self._write(doc_id, dict(doc) if doc is not None else None)
        self._last_id = max(self._last_id, doc_id if doc is not None else 0)

    def _write(self, doc_id: int, doc: dict[str, Any] | None) -> None:
        name = self.shard_name(doc_id)
        # Known from now on, for all() and search(); no query of it may
        # be answered from before this write.
        self._shard(name).clear_cache()
        self.storage.put(name, str(doc_id), doc)
