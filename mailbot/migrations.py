"""Bringing a record written by an older mailbot up to the current schema.

Each migration takes the raw record (table name to documents by id) of
one version and returns it in the next. The Store runs them in order at
start-up, after keeping a backup of the record as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mailbot.shards import shard_name

Raw = dict[str, dict[str, Any]]

TABLES = ("clusters", "schools", "events", "messages", "outgoing",
          "addresses", "meta")
SCHEMA_VERSION = 3


def version_of(raw: Raw) -> int:
    """The schema version a raw record says it has (0: a new record)."""
    for table, docs in raw.items():
        if table == "meta" or table.startswith("meta."):
            for doc in docs.values():
                if isinstance(doc, dict) and doc.get("name") == "schema":
                    return int(doc.get("version", 1))
    return 1 if raw else 0


def _shard_tables(raw: Raw) -> Raw:
    """Version 1 kept each table whole; version 2 keeps it in shards, and
    drops the bodies of mail already sent."""
    moved: Raw = {name: docs for name, docs in raw.items()
                  if name not in TABLES}
    for table in TABLES:
        for doc_id, doc in raw.get(table, {}).items():
            if table == "outgoing" and doc.get("status") == "sent":
                doc = {**doc, "raw": ""}
            if table == "meta" and doc.get("name") == "schema":
                doc = {**doc, "version": 2}
            moved.setdefault(shard_name(table, int(doc_id)), {})[doc_id] = doc
    return moved


def _comments_apart(raw: Raw) -> Raw:
    """Version 2 kept each school's comments in a list in the school's
    document, rewritten whole with every new comment; version 3 keeps each
    comment as a document of its own in the comments table, with its
    school's id. Comments are numbered school by school, in the order of
    each school's list."""
    moved: Raw = {}
    schools: list[tuple[int, dict[str, Any]]] = []
    for table, docs in raw.items():
        if not table.startswith("schools."):
            moved[table] = docs if not table.startswith("meta.") else {
                doc_id: ({**doc, "version": 3}
                         if isinstance(doc, dict)
                         and doc.get("name") == "schema" else doc)
                for doc_id, doc in docs.items()}
            continue
        kept = moved[table] = {}
        for doc_id, doc in docs.items():
            kept[doc_id] = {k: v for k, v in doc.items() if k != "comments"}
            schools.append((int(doc_id), doc))
    comment_id = 0
    for school_id, doc in sorted(schools, key=lambda item: item[0]):
        for comment in doc.get("comments") or []:
            comment_id += 1
            moved.setdefault(shard_name("comments", comment_id), {})[
                str(comment_id)] = {"school_id": school_id, **comment}
    return moved


MIGRATIONS: dict[int, Callable[[Raw], Raw]] = {
    1: _shard_tables,
    2: _comments_apart,
}


def migrate(raw: Raw) -> tuple[Raw, list[int]]:
    """The record at SCHEMA_VERSION, and the versions it passed through."""
    passed = []
    version = version_of(raw)
    while 0 < version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        passed.append(version)
        version += 1
    return raw, passed
