"""Personal data, as UK GDPR expects: subject access, erasure, retention.

The record holds personal data of the people who write to the programme
or are named in a nomination: their names and addresses, what they wrote
(comments, subjects, the nomination itself) and copies of the mail that
came from them or went to them.

- `subject_access` gathers everything held about one address, for a
  subject access request (`mailbot privacy export`).
- `erase` replaces that person's details with a placeholder,
  `erased-<random>@erased.invalid`, the same one everywhere for one
  erasure, so that the programme's history still counts and links ("the
  contact of this school was replaced") without saying who it was
  (`mailbot privacy erase`). The placeholder is random, not a hash of the
  address: a hash could be matched by hashing a guess.
- `retain_if_due` removes whole copies of messages older than
  `privacy.keep_raw_days`, at most once a day, from the sweep.

An address is matched without regard to case, as a whole address: in the
fields that hold one, and inside any text (a nomination that lists a
name and an address, a bounce's reason).
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tinydb.table import Document

from mailbot import setaside
from mailbot.clock import Clock
from mailbot.compose import UK
from mailbot.config import Config, MailboxConfig
from mailbot.errors import ConfigError, MailbotError, TransientError
from mailbot.sources import MailSource
from mailbot.store import (
    UNSENT,
    Store,
    compact_now,
    expire_outgoing_raw,
    oldest_message_at,
    personal_documents,
    reindex_after_erasure,
    replace_personal,
    stamp,
)

log = logging.getLogger(__name__)

ERASED_DOMAIN = "erased.invalid"
ERASED = "[erased]"
# A name shorter than this is not looked for inside text: too many words
# would match it.
_SHORTEST_NAME = 4
_ADDRESS = re.compile(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+")

# What the export says about copies that are not in the record.
ELSEWHERE = [
    ("The mailbox's handled and set-aside folders keep the messages as "
     "they arrived until privacy.keep_raw_days have passed."),
    ("The backups of the record (mailbot.json.1 to .3) keep what the "
     "record held when each was made, until they are replaced, one at each "
     "start."),
    ("mailbot's log names addresses; how long it is kept is the "
     "operator's choice."),
]


class PrivacyError(MailbotError):
    """A request about personal data that mailbot will not carry out."""


def normalise(address: str) -> str:
    """The address as the record keeps it (lower case); PrivacyError if it
    is not one address."""
    wanted = address.strip().lower()
    if not _ADDRESS.fullmatch(wanted):
        raise PrivacyError(f"{address!r} is not an email address")
    return wanted


def _pattern(address: str) -> re.Pattern[str]:
    # The whole address: not the tail of a longer local part, nor the
    # start of a longer domain.
    return re.compile(r"(?<![\w.%+-])" + re.escape(address)
                      + r"(?![\w-]|\.\w)", re.IGNORECASE)


def _same(value: Any, address: str) -> bool:
    return isinstance(value, str) and value.strip().lower() == address


def _mentions(value: Any, pattern: re.Pattern[str]) -> bool:
    if isinstance(value, str):
        return pattern.search(value) is not None
    if isinstance(value, dict):
        return any(_mentions(v, pattern) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_mentions(v, pattern) for v in value)
    return False


def _name_key(key: str) -> str | None:
    """The field that holds the name going with an address field:
    email -> name, contact_email -> contact_name, lead_email -> lead_name."""
    return key[:-len("email")] + "name" if key.endswith("email") else None


def _names(value: Any, address: str) -> Iterator[str]:
    """The names given with the address anywhere in a document."""
    if isinstance(value, dict):
        for key, item in value.items():
            name_key = _name_key(key)
            if name_key and _same(item, address):
                name = value.get(name_key)
                if isinstance(name, str) and name.strip():
                    yield name.strip()
            yield from _names(item, address)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _names(item, address)


def message_text(data: bytes | str) -> str:
    """A whole message as a person reads it: its header, and each text
    part and attachment decoded (an attachment as text, if it is)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    parts = [head.decode("utf-8", "replace")]
    try:
        parts += _decoded_parts(data)
    except Exception:  # mail from anyone: at worst, the bytes as they are
        parts.append(data.decode("utf-8", "replace"))
    return "\n\n".join(parts)


def _decoded_parts(data: bytes) -> list[str]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # a part that cannot be decoded: as it stands
            payload = None
        if isinstance(payload, bytes):
            charset = part.get_content_charset() or "utf-8"
            try:
                parts.append(payload.decode(charset, "replace"))
            except LookupError:
                parts.append(payload.decode("utf-8", "replace"))
        else:
            parts.append(str(part.get_payload()))
    return parts


# -- who the programme's own people are ----------------------------------


def programme_roles(config: Config, address: str) -> list[str]:
    """What the config makes this address, if anything."""
    roles = []
    if address in {a.lower() for a in config.own_addresses}:
        roles.append("the programme address")
    if address in {a.lower() for a in config.staff}:
        roles.append("staff")
    roles += [f"validator ({v.name})" for v in config.validators
              if v.email.lower() == address]
    roles += [f"council contact for {council} ({c.name})"
              for council, c in config.councils.items()
              if c.email.lower() == address]
    if config.education_scotland.email.lower() == address:
        roles.append("Education Scotland contact")
    return roles


# -- subject access ------------------------------------------------------


@dataclass
class _Found:
    """Where one address is in the record."""

    address: str
    clusters: list[Document] = field(default_factory=list)
    schools: list[Document] = field(default_factory=list)
    messages: list[Document] = field(default_factory=list)  # from it
    mentioned_in: list[Document] = field(default_factory=list)  # messages
    outgoing: list[Document] = field(default_factory=list)
    events: list[Document] = field(default_factory=list)
    addresses: list[Document] = field(default_factory=list)
    copies: dict[Path, Document | None] = field(default_factory=dict)

    @property
    def message_ids(self) -> set[str]:
        return {str(m["message_id"]) for m in self.messages
                if m.get("message_id")}

    @property
    def empty(self) -> bool:
        return not (self.clusters or self.schools or self.messages
                    or self.mentioned_in or self.outgoing or self.events
                    or self.addresses or self.copies)


def _find(store: Store, address: str) -> _Found:
    pattern = _pattern(address)
    docs = personal_documents(store)
    found = _Found(address)
    for message in docs["messages"]:
        if _same(message.get("from"), address):
            found.messages.append(message)
        elif _mentions(dict(message), pattern):
            found.mentioned_in.append(message)
    theirs = found.message_ids
    found.clusters = [c for c in docs["clusters"] if _mentions(dict(c), pattern)]
    found.schools = [s for s in docs["schools"]
                     if _mentions(dict(s), pattern) or any(
                         c.get("message_id") in theirs
                         for c in s.get("comments", []))]
    found.events = [e for e in docs["events"]
                    if _mentions(dict(e), pattern)
                    or (e.get("message_id") and e["message_id"] in theirs)]
    found.addresses = [a for a in docs["addresses"]
                       if _mentions(dict(a), pattern)]
    for item in docs["outgoing"]:
        if (any(_same(a, address) for a in (*item.get("to", []),
                                            *item.get("cc", [])))
                or (item.get("in_reply_to") and item["in_reply_to"] in theirs)
                or _mentions({k: v for k, v in item.items() if k != "raw"},
                             pattern)
                or (item.get("raw") and pattern.search(
                    message_text(str(item["raw"]))))):
            found.outgoing.append(item)
    found.copies = _copies(store, found, pattern)
    return found


def _copies(store: Store, found: _Found, pattern: re.Pattern[str]
            ) -> dict[Path, Document | None]:
    """The set-aside copies of messages from the address, or naming it."""
    kept = setaside.kept_copies(store)
    if not kept:
        return {}
    by_digest = {setaside.copy_digest(m["key"]): m
                 for m in store.all_messages()}
    copies: dict[Path, Document | None] = {}
    for digest, path in sorted(kept.items()):
        record = by_digest.get(digest)
        if record is not None and _same(record.get("from"), found.address):
            copies[path] = record
            continue
        try:
            text = message_text(path.read_bytes())
        except OSError:
            continue
        if pattern.search(text):
            copies[path] = record
    return copies


def _plain(doc: Document) -> dict[str, Any]:
    return {"id": doc.doc_id, **dict(doc)}


def subject_access(store: Store, config: Config, address: str,
                   now: datetime) -> dict[str, Any]:
    """Everything held about one address, as JSON-ready data."""
    address = normalise(address)
    found = _find(store, address)

    def roles(doc: Document, fields: Iterable[tuple[str, str]]) -> list[str]:
        named = [role for role, path in fields if _same(_get(doc, path),
                                                        address)]
        return named or ["named"]

    comments = [{"school_id": s.doc_id, "school": s.get("name"), **c}
                for s in found.schools for c in s.get("comments", [])
                if c.get("message_id") in found.message_ids]
    outgoing = []
    for item in found.outgoing:
        entry = _plain(item)
        if item.get("raw"):
            entry["text"] = message_text(str(item["raw"]))
        outgoing.append(entry)
    copies = []
    for path, record in found.copies.items():
        data = path.read_bytes() if path.exists() else b""
        copies.append({
            "id": setaside.short_id(record["key"]) if record else None,
            "file": str(path),
            "from": record.get("from") if record else None,
            "received_at": record.get("received_at") if record else None,
            "raw": data.decode("utf-8", "replace"),
            "text": message_text(data)})
    return {
        "address": address,
        "generated_at": stamp(now),
        "programme_roles": programme_roles(config, address),
        "clusters": [{"id": c.doc_id,
                      "roles": roles(c, [("lead contact", "lead.email"),
                                         ("validator", "validator.email")]),
                      "record": dict(c)} for c in found.clusters],
        "schools": [{"id": s.doc_id,
                     "roles": roles(s, [("school contact", "contact_email")]),
                     "record": dict(s)} for s in found.schools],
        "messages_from": [_plain(m) for m in found.messages],
        "messages_naming": [_plain(m) for m in found.mentioned_in],
        "comments": comments,
        "outgoing": outgoing,
        "events": [_plain(e) for e in found.events
                   if e.get("event") != "reply-limit"],
        "reply_limits": [_plain(e) for e in found.events
                         if e.get("event") == "reply-limit"],
        "undeliverable": [_plain(a) for a in found.addresses],
        "set_aside_copies": copies,
        "elsewhere": ELSEWHERE,
    }


def _get(doc: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def is_empty(export: dict[str, Any]) -> bool:
    """Does a subject access export hold nothing from the record?"""
    return not any(export[key] for key in (
        "clusters", "schools", "messages_from", "messages_naming", "comments",
        "outgoing", "events", "reply_limits", "undeliverable",
        "set_aside_copies"))


# -- erasure -------------------------------------------------------------


@dataclass
class Erasure:
    """What an erasure changed, or would change."""

    address: str
    placeholder: str
    clusters: int = 0
    schools: int = 0
    messages: int = 0
    outgoing: int = 0
    events: int = 0
    addresses: int = 0
    copies: int = 0
    # Queued mail that will not be sent: "kind key" each.
    withdrawn: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def nothing(self) -> bool:
        return not (self.clusters or self.schools or self.messages
                    or self.outgoing or self.events or self.addresses
                    or self.copies)

    def summary(self) -> str:
        counts = [(self.clusters, "cluster"), (self.schools, "school"),
                  (self.messages, "message received"),
                  (self.outgoing, "message sent or queued"),
                  (self.events, "history event"),
                  (self.addresses, "undeliverable mark"),
                  (self.copies, "set-aside copy")]
        return ", ".join(f"{n} {what}" for n, what in counts if n)


class _Scrubber:
    """Replaces one person's address, and their names where the address
    is, inside any value."""

    def __init__(self, address: str, placeholder: str,
                 names: Iterable[str]) -> None:
        self.address = address
        self.placeholder = placeholder
        self.pattern = _pattern(address)
        self.names = [re.compile(r"\b" + re.escape(n) + r"\b", re.IGNORECASE)
                      for n in sorted(set(names), key=len, reverse=True)
                      if len(n) >= _SHORTEST_NAME]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if not self.pattern.search(value):
                return value
            text = self.pattern.sub(self.placeholder, value)
            for name in self.names:
                text = name.sub(ERASED, text)
            return text
        if isinstance(value, dict):
            out = {key: self(item) for key, item in value.items()}
            for key, item in value.items():
                name_key = _name_key(key)
                if name_key and out.get(name_key) and _same(item,
                                                            self.address):
                    out[name_key] = ERASED
            return out
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        return value


def erase(store: Store, config: Config, address: str, now: datetime, *,
          apply: bool) -> Erasure:
    """Replace one person's details in the record by a placeholder, and
    remove the copies of their mail; only say what would change unless
    `apply`. The caller holds the record's lock. Applied, the record is
    committed and compacted at once, so that neither the snapshot nor the
    journal keeps the details (the backups still do: see ELSEWHERE).

    What stays: every document, with its statuses, times, kinds and
    links, so the programme's history still counts. What goes: the
    address (everywhere), the names given with it, the text the person
    wrote (comments, subjects), the stored text of mail to or naming them
    (queued mail among it is withdrawn: it could only be sent as it
    stands) and the set-aside copies of their mail or naming them.
    """
    address = normalise(address)
    roles = programme_roles(config, address)
    if roles:
        raise PrivacyError(
            f"{address} is {', '.join(roles)} in {config.path}: the "
            "programme's own people are kept in the config, not the "
            "record; change the config to remove them")
    found = _find(store, address)
    names = [name for doc in (*found.clusters, *found.schools)
             for name in _names(dict(doc), address)]
    _add_queued_naming(store, found, names)
    placeholder = f"erased-{secrets.token_hex(5)}@{ERASED_DOMAIN}"
    result = Erasure(address, placeholder)
    result.clusters = len(found.clusters)
    result.schools = len(found.schools)
    result.messages = len(found.messages) + len(found.mentioned_in)
    result.outgoing = len(found.outgoing)
    result.events = len(found.events)
    result.addresses = len(found.addresses)
    result.copies = len(found.copies)
    result.withdrawn = [f"{o.get('kind')} {o.get('key')}"
                        for o in found.outgoing if o.get("status") in UNSENT]
    if not apply or found.empty:
        return result

    scrub = _Scrubber(address, placeholder, names)
    theirs = found.message_ids
    try:
        _erase_documents(store, found, scrub, theirs, now)
        # Nothing may go to the placeholder: delivery leaves out an address
        # marked undeliverable, and the digest says why.
        store.mark_undeliverable(placeholder, now, "personal data erased", "")
        reindex_after_erasure(store)
        store.add_event(now, "erased", detail=(
            f"one person's details replaced by {placeholder}: "
            f"{result.summary()}"
            + (f"; {len(result.withdrawn)} queued messages withdrawn"
               if result.withdrawn else "")))
        store.commit()
    except BaseException:
        store.rollback()
        raise
    for path in found.copies:
        setaside.remove_copy(path)
    compact_now(store)
    result.done = True
    log.info("erased one person's details (now %s): %s", placeholder,
             result.summary())
    return result


def _add_queued_naming(store: Store, found: _Found,
                       names: Iterable[str]) -> None:
    """Add to what is found the queued mail whose text gives one of the
    person's names without their address (a welcome naming the lead, to
    another school): sent after the erasure, it would still name them."""
    patterns = [re.compile(r"\b" + re.escape(n) + r"\b", re.IGNORECASE)
                for n in set(names) if len(n) >= _SHORTEST_NAME]
    if not patterns:
        return
    known = {o.doc_id for o in found.outgoing}
    for item in store.all_outgoing():
        if (item.doc_id in known or item.get("status") not in UNSENT
                or not item.get("raw")):
            continue
        text = message_text(str(item["raw"]))
        if any(p.search(text) for p in patterns):
            found.outgoing.append(item)


def _erase_documents(store: Store, found: _Found, scrub: _Scrubber,
                     theirs: set[str], now: datetime) -> None:
    address = found.address
    for cluster in found.clusters:
        lead = _same(_get(cluster, "lead.email"), address)
        replace_personal(store, "clusters", cluster.doc_id,
                         _changed(cluster, scrub(dict(cluster))))
        if lead:
            store.add_event(now, "erased", cluster_id=cluster.doc_id,
                            detail="the lead contact's details were erased")
    for school in found.schools:
        contact = _same(school.get("contact_email"), address)
        fields = scrub(dict(school))
        fields["comments"] = [
            {**c, "text": ERASED} if c.get("message_id") in theirs else c
            for c in fields.get("comments", [])]
        if contact:
            fields["undeliverable"] = True  # no one to write to now
        if isinstance(school.get("contacts"), list):
            # Addresses accepted to write for the school: a placeholder
            # there would only be one more address to accept mail from.
            fields["contacts"] = [a for a in school["contacts"]
                                  if not _same(a, address)]
        replace_personal(store, "schools", school.doc_id,
                         _changed(school, fields))
        if contact:
            store.add_event(now, "erased", school_id=school.doc_id,
                            cluster_id=school.get("cluster_id"),
                            detail="the school contact's details were erased")
    for message in found.messages:
        fields = scrub(dict(message))
        fields["subject"] = ERASED
        replace_personal(store, "messages", message.doc_id,
                         _changed(message, fields))
    for message in found.mentioned_in:
        replace_personal(store, "messages", message.doc_id,
                         _changed(message, scrub(dict(message))))
    for event in found.events:
        fields = scrub(dict(event))
        if event.get("message_id") in theirs and event.get("event") == "comment":
            fields["detail"] = ERASED  # the start of what they wrote
        replace_personal(store, "events", event.doc_id, _changed(event, fields))
    for item in found.outgoing:
        fields = scrub({k: v for k, v in item.items() if k != "raw"})
        fields["raw"] = ""
        if (any(_same(a, address) for a in (*item.get("to", []),
                                            *item.get("cc", [])))
                or item.get("in_reply_to") in theirs):
            fields["subject"] = ERASED  # a reply's subject is theirs
        if item.get("status") in UNSENT:
            fields["status"] = "suppressed"
            fields["error"] = ("withdrawn: it held the details of a "
                               "person whose data was erased")
        replace_personal(store, "outgoing", item.doc_id,
                         _changed(item, fields))
    for mark in found.addresses:
        replace_personal(store, "addresses", mark.doc_id,
                         _changed(mark, scrub(dict(mark))))


def _changed(before: Document, after: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in after.items() if before.get(k) != v}


# -- retention -----------------------------------------------------------


@dataclass(frozen=True)
class Retained:
    """What one day's expiry removed."""

    texts: int
    copies: int
    mailbox: int


def retain_if_due(store: Store, config: Config, clock: Clock,
                  mailbox: MailSource | None = None) -> Retained | None:
    """Once a day (UK date, noted in the record's meta): remove whole
    copies of messages older than privacy.keep_raw_days: the text of
    outgoing mail done with, set-aside copies, and, given the `mailbox`,
    mail in its handled and set-aside folders. None if it already ran
    today.

    The mailbox is looked at only once the record holds a message that
    old (before then mailbot has put nothing that old there). If it
    cannot be reached, the rest is done and it waits for the next day.
    """
    now = clock.now()
    today = now.astimezone(UK).date().isoformat()
    if store.get_meta("retention_day") == today:
        return None
    before = now - timedelta(days=config.privacy.keep_raw_days)
    texts = expire_outgoing_raw(store, before)
    store.set_meta("retention_day", today)
    store.commit()
    copies = setaside.expire(store, before)
    removed = 0
    oldest = oldest_message_at(store)
    if mailbox is not None and oldest is not None and oldest < stamp(before):
        removed = _expire_mailbox(config.mailbox, mailbox, before)
    if texts or copies or removed:
        log.info("privacy: removed the text of %d messages sent, %d set-aside "
                 "copies and %d messages in the mailbox, all from before %s",
                 texts, copies, removed, stamp(before))
    return Retained(texts, copies, removed)


def _expire_mailbox(config: MailboxConfig, source: MailSource,
                    before: datetime) -> int:
    removed = 0
    try:
        for folder in dict.fromkeys((config.handled_folder,
                                     config.set_aside_folder)):
            removed += source.expire(folder, before)
    except (TransientError, ConfigError, OSError) as exc:
        log.warning("privacy: old mail in the mailbox was not removed, "
                    "trying again tomorrow: %s", exc)
    return removed
