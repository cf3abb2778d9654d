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
name and an address, a bounce's reason). In a whole copy of a message it
is looked for everywhere a person could read it (`searched`): every
header, encoded-words decoded; every part, HTML entities decoded; a
message forwarded inside it; the XML of an attached workbook or document.
"""

from __future__ import annotations

import base64
import codecs
import email
import html
import io
import logging
import quopri
import re
import secrets
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import decode_header
from email.message import Message
from pathlib import Path
from typing import Any

from tinydb.table import Document

from mailbot import setaside, spreadsheets
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
    """A whole message as a person reads it: the header of the message and
    of any message inside it (forwarded as an attachment), decoded, and
    each part: text decoded, and the text of a document (XLSX, DOCX, ODT)
    from its XML."""
    return "\n\n".join(_Reading(data).texts)


def searched(data: bytes | str, pattern: re.Pattern[str]) -> tuple[bool, list[str]]:
    """Does a whole message name what `pattern` matches anywhere: in any
    header (encoded-words decoded), any part (transfer encoding undone,
    HTML entities too), a message inside it, or the XML of a document
    attached? And why any of it could not be searched ([] if all was):
    a document that cannot be opened or is over the bounds of
    mailbot/spreadsheets.py, or messages nested too deep."""
    reading = _Reading(data)
    text = "\n".join((*reading.texts, *reading.extra))
    if pattern.search(text):
        return True, reading.unread
    return (bool("=?" in text and pattern.search(_decode_words(text))),
            reading.unread)


# A message inside a message inside ... past this is not read.
_DEEPEST = 20
# The extensions of the documents that are zip files of XML.
_ZIP_DOCUMENTS = (".xlsx", ".xlsm", ".xltx", ".docx", ".docm", ".dotx",
                  ".pptx", ".odt", ".ods", ".odp", ".odg", ".zip")
# In such a zip, the members read as text; an archive inside it is not
# searched, so the zip is not searched in full.
_TEXT_MEMBERS = (".xml", ".rels", ".vml", ".txt", ".csv", ".tsv", ".htm",
                 ".html", ".json", ".vcf", ".eml")
_ARCHIVE_MEMBERS = (*_ZIP_DOCUMENTS, ".xls", ".doc", ".jar", ".gz", ".7z",
                    ".rar", ".tar")
_TAG = re.compile(r"<[^<>]*>")
_SPACES = re.compile(r"[ \t]{2,}")
_BLOCK = re.compile(r"</?(?:p|br|div|tr|td|th|li|h[1-6]|table|ul|ol|"
                    r"blockquote|pre|hr)\b[^<>]*>", re.IGNORECASE)
_ENCODED_WORD = r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?="
_ENCODED_WORDS = re.compile(_ENCODED_WORD + r"(?:\s+" + _ENCODED_WORD + r")*")


class _Reading:
    """One message read whole: `texts` as a person reads it, `extra` what
    only a search looks at (the raw bytes, each part's header, HTML and
    XML with their tags left out or joined up), `unread` why any of it
    could not be read."""

    def __init__(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.texts: list[str] = []
        # The bytes as they are: whatever the parser makes of them.
        self.extra: list[str] = [data.decode("utf-8", "replace")]
        self.unread: list[str] = []
        self.unzipped = 0  # bytes read from documents, for all of them
        self._message(data, 0)

    def _message(self, data: bytes, depth: int) -> None:
        if depth > _DEEPEST:
            self.unread.append(f"messages nested over {_DEEPEST} deep")
            return
        try:
            message = email.message_from_bytes(data)
            self._entity(message, depth, whole=True)
        except Exception as exc:  # mail from anyone: the raw bytes remain
            self.unread.append(f"a message could not be parsed: {exc}")

    def _entity(self, entity: Message, depth: int, *, whole: bool) -> None:
        header = [f"{name}: {_decoded_header(_text(value))}"
                  for name, value in entity.raw_items()]
        (self.texts if whole else self.extra).append("\n".join(header))
        if entity.is_multipart():
            inner = entity.get_content_maintype() == "message"
            encoding = str(entity.get("Content-Transfer-Encoding", ""))
            if inner and encoding.strip().lower() in ("base64",
                                                      "quoted-printable"):
                self._encoded_message(entity, encoding, depth)
                return
            for part in entity.get_payload():
                if isinstance(part, Message):
                    if inner and depth + 1 > _DEEPEST:
                        self.unread.append(
                            f"messages nested over {_DEEPEST} deep")
                        continue
                    self._entity(part, depth + inner, whole=inner)
            return
        self._leaf(entity, depth)

    def _encoded_message(self, entity: Message, encoding: str,
                         depth: int) -> None:
        """A message attached with a transfer encoding (which RFC 2046
        forbids, and some mailers do): the parser took the encoded text
        for the message; decoded, it is read as one."""
        try:
            encoded = "".join(part.as_string() for part in entity.get_payload()
                              if isinstance(part, Message))
            if "base64" in encoding.lower():
                data = base64.b64decode(encoded.encode("ascii", "ignore"))
            else:
                data = quopri.decodestring(encoded.encode("utf-8", "replace"))
        except Exception as exc:  # mail from anyone
            self.unread.append(f"an attached message cannot be decoded: {exc}")
            return
        self._message(data, depth + 1)

    def _leaf(self, part: Message, depth: int) -> None:
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # a part that cannot be decoded: as it stands
            payload = None
        if not isinstance(payload, bytes):
            payload = _text(str(part.get_payload())).encode("utf-8")
        try:
            name = _decoded_header(_text(part.get_filename() or ""))
        except Exception:  # a broken RFC 2231 name: the header has it
            name = ""
        self.extra.append(name)
        content_type = part.get_content_type()
        lower = name.lower()
        if content_type in ("message/rfc822", "message/global") \
                or lower.endswith(".eml"):
            self._message(payload, depth + 1)
        elif payload.startswith(b"PK\x03\x04") or lower.endswith(
                _ZIP_DOCUMENTS) or content_type in (
                "application/zip", "application/x-zip-compressed") \
                or content_type.startswith((
                    "application/vnd.openxmlformats-officedocument.",
                    "application/vnd.oasis.opendocument.")):
            self._zip(payload, name or content_type)
        else:
            text = _decoded(payload, part.get_content_charset())
            if content_type == "text/html" or lower.endswith((".htm",
                                                              ".html")):
                self.texts.append(_rendered(text))
                self.extra += _markup(text)
            elif part.get_content_maintype() == "text" or lower.endswith(
                    (".csv", ".tsv", ".txt")):
                self.texts.append(text)
            else:  # an image or a PDF: searched, not shown
                self.extra.append(text)

    def _zip(self, data: bytes, name: str) -> None:
        """The text of the XML members of a zip: a workbook, a document.
        Bounded as spreadsheets.py bounds a workbook: its member count
        and what it would expand to (for all documents in one message)."""
        shown = name[:80]
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = archive.infolist()
                if len(members) > spreadsheets.MAX_MEMBERS:
                    self.unread.append(
                        f"{shown}: {len(members):,} parts in its zip, over "
                        f"{spreadsheets.MAX_MEMBERS:,}")
                    return
                size = sum(info.file_size for info in members)
                if self.unzipped + size > spreadsheets.MAX_UNZIPPED:
                    self.unread.append(
                        f"{shown}: {size:,} bytes unzipped, over the "
                        f"{spreadsheets.MAX_UNZIPPED:,} read from a "
                        "message's documents")
                    return
                self.unzipped += size
                for info in members:
                    lower = info.filename.lower()
                    if lower.endswith(_ARCHIVE_MEMBERS):
                        self.unread.append(
                            f"{shown}: an archive inside it, "
                            f"{info.filename[:80]!r}, is not searched")
                    elif lower.endswith(_TEXT_MEMBERS) and not info.is_dir():
                        text = _decoded(archive.read(info), None)
                        self.texts.append(_SPACES.sub(" ", html.unescape(
                            _TAG.sub(" ", text))))
                        self.extra += _markup(text)
        except _DAMAGED as exc:
            self.unread.append(f"{shown}: cannot be opened: {exc}")


# What a damaged or encrypted zip raises (RuntimeError: a password).
_DAMAGED = (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError,
            ValueError, KeyError, OSError, EOFError)


def _markup(text: str) -> list[str]:
    """HTML or XML as a search reads it: entities decoded (`&#64;`), with
    the tags as they are (an address in an attribute), left out (an
    address split over runs of text) and as spaces (cells side by side)."""
    return [html.unescape(text), html.unescape(_TAG.sub("", text)),
            html.unescape(_TAG.sub(" ", text))]


def _rendered(page: str) -> str:
    """HTML as a person sees it, near enough: a block's tags as line
    ends, other tags left out, entities decoded."""
    return html.unescape(_TAG.sub("", _BLOCK.sub("\n", page)))


def _text(value: Any) -> str:
    """A header value or payload as text; bytes that were not UTF-8
    (kept by the parser as surrogates) replaced."""
    return str(value).encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace")


def _decoded(data: bytes, charset: str | None) -> str:
    """Bytes as text: by their byte-order mark, as UTF-16 if every other
    byte is zero (Excel's "Unicode text"), else by their charset."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    head = data[:400]
    if len(head) > 1 and head.count(0) > len(head) // 4:
        little = head[1::2].count(0) > head[0::2].count(0)
        return data.decode("utf-16-le" if little else "utf-16-be", "replace")
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return data.decode("utf-8", "replace")


def _decoded_header(value: str) -> str:
    """A header with its RFC 2047 encoded-words decoded, whatever their
    charset claims; as it stands if it cannot be."""
    if "=?" not in value:
        return value
    try:
        pieces = decode_header(value)
    except Exception:  # mail from anyone
        return value
    out = []
    for chunk, charset in pieces:
        if isinstance(chunk, str):
            out.append(chunk)
        elif charset is None:  # the text between encoded-words
            try:
                out.append(chunk.decode("raw-unicode-escape"))
            except UnicodeDecodeError:
                out.append(chunk.decode("latin-1"))
        else:
            out.append(_decoded(chunk, charset))
    return "".join(out)


def _decode_words(text: str) -> str:
    """Any text with its runs of encoded-words decoded (a bounce quoting
    a header)."""
    return _ENCODED_WORDS.sub(lambda m: _decoded_header(m.group()), text)


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


def held_elsewhere(config: Config) -> list[str]:
    """Where copies are kept that neither the export nor erasure reach,
    with this config: a sentence each."""
    name = config.store_path.name
    held = [
        ("The mailbox's handled and set-aside folders keep the messages as "
         "they arrived until privacy.keep_raw_days have passed."),
        (f"The backups of the record ({name}.1 to .3) keep what the record "
         "held when each was made, until three more starts replace them."),
        ("mailbot's log names addresses; how long it is kept is the "
         "operator's choice."),
    ]
    if config.sending.kind == "file":
        held.append(f"The outbox, {config.sending.path}, keeps every message "
                    "sent, as sent; mailbot does not empty it.")
    demo = config.base_dir / "data" / "demo"
    if demo.exists():
        held.append(f"The demo's folder, {demo}, keeps its own record, "
                    "mailbox and outbox (`mailbot demo`); delete it when "
                    "done with it.")
    return held


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
    # Among the copies, those that could not be searched in full, each
    # with why: kept as they may name the person (see _copies).
    unsearched: dict[Path, list[str]] = field(default_factory=dict)

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
                     if _mentions(_with_comments(store, s), pattern) or any(
                         c.get("message_id") in theirs
                         for c in store.comments_of(s.doc_id))]
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
                or (item.get("raw")
                    and searched(str(item["raw"]), pattern)[0])):
            found.outgoing.append(item)
    _copies(store, found, pattern)
    return found


def _copies(store: Store, found: _Found, pattern: re.Pattern[str]) -> None:
    """The set-aside copies of messages from the address, or naming it
    anywhere (see `searched`); and those that could not be searched in
    full whose message is linked to the person: from them, naming them in
    the record, recorded against a school or cluster where they are, or
    from that school's contact or that cluster's lead (a nomination sent
    again). Those may name them, and go with the rest."""
    kept = setaside.kept_copies(store)
    if not kept:
        return
    by_digest = {setaside.copy_digest(m["key"]): m
                 for m in store.all_messages()}
    theirs = {m.doc_id for m in (*found.messages, *found.mentioned_in)}
    schools = {s.doc_id for s in found.schools}
    clusters = ({c.doc_id for c in found.clusters}
                | {s.get("cluster_id") for s in found.schools})
    senders = {str(a).lower() for s in found.schools
               for a in (s.get("contact_email"), *(s.get("contacts") or []))
               if a}
    senders |= {str(_get(c, "lead.email")).lower()
                for c in store.all_clusters()
                if c.doc_id in clusters and _get(c, "lead.email")}
    for digest, path in sorted(kept.items()):
        record = by_digest.get(digest)
        if record is not None and _same(record.get("from"), found.address):
            found.copies[path] = record
            continue
        try:
            named, unread = searched(path.read_bytes(), pattern)
        except OSError:
            continue
        linked = record is not None and (
            record.doc_id in theirs or record.get("school_id") in schools
            or record.get("cluster_id") in clusters
            or str(record.get("from") or "").lower() in senders)
        if named or (unread and linked):
            found.copies[path] = record
            if not named:
                found.unsearched[path] = unread


def _with_comments(store: Store, school: Document) -> dict[str, Any]:
    """A school's document with the comments it sent, as one whole: what
    is held about a school, to search, show and scrub. (The comments are
    kept in a table of their own.)"""
    return {**dict(school), "comments": [
        {k: v for k, v in c.items() if k != "school_id"}
        for c in store.comments_of(school.doc_id)]}


def _given_names(found: _Found) -> list[str]:
    """The names given with the person's address in their clusters and
    schools."""
    return [name for doc in (*found.clusters, *found.schools)
            for name in _names(dict(doc), found.address)]


def _name_patterns(names: Iterable[str]) -> list[re.Pattern[str]]:
    """Each name as a whole word in any case, longest first; names too
    short to tell from other words are left out."""
    return [re.compile(r"\b" + re.escape(n) + r"\b", re.IGNORECASE)
            for n in sorted(set(names), key=len, reverse=True)
            if len(n) >= _SHORTEST_NAME]


def _naming(found: _Found) -> list[re.Pattern[str]]:
    """What names the person: their address, and their name ("Ann Planted
    ran our training") as given with it anywhere the record holds it."""
    return [_pattern(found.address), *_name_patterns(_given_names(found))]


def _theirs_of(store: Store, school: Document, found: _Found,
               naming: list[re.Pattern[str]]) -> dict[str, Any]:
    """A school's document with those of its comments the person wrote or
    that name them (`naming`): the rest are others' words, about others."""
    whole = _with_comments(store, school)
    whole["comments"] = [c for c in whole["comments"]
                         if c.get("message_id") in found.message_ids
                         or any(_mentions(c, p) for p in naming)]
    return whole


def _plain(doc: Document) -> dict[str, Any]:
    return {"id": doc.doc_id, **dict(doc)}


def subject_access(store: Store, config: Config, address: str,
                   now: datetime) -> dict[str, Any]:
    """Everything held about one address, as JSON-ready data."""
    address = normalise(address)
    found = _find(store, address)
    naming = _naming(found)

    def roles(doc: Document, fields: Iterable[tuple[str, str]]) -> list[str]:
        named = [role for role, path in fields if _same(_get(doc, path),
                                                        address)]
        return named or ["named"]

    comments = [{"school_id": s.doc_id, "school": s.get("name"),
                 **{k: v for k, v in c.items() if k != "school_id"}}
                for s in found.schools for c in store.comments_of(s.doc_id)
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
            # Why it is here without the address being found in it: it
            # could not be searched in full, and is linked to the person.
            "not_searched": found.unsearched.get(path, []),
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
                     "record": _theirs_of(store, s, found, naming)}
                    for s in found.schools],
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
        "elsewhere": held_elsewhere(config),
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
    # Of the copies, those that could not be searched in full.
    unsearched: int = 0
    # Queued mail that will not be sent: "kind key" each.
    withdrawn: list[str] = field(default_factory=list)
    # Where copies are kept that erasure does not reach: a sentence each.
    elsewhere: list[str] = field(default_factory=list)
    done: bool = False

    @property
    def nothing(self) -> bool:
        return not (self.clusters or self.schools or self.messages
                    or self.outgoing or self.events or self.addresses
                    or self.copies)

    def summary(self) -> str:
        counts = [(self.clusters, "cluster", "clusters"),
                  (self.schools, "school", "schools"),
                  (self.messages, "message received", "messages received"),
                  (self.outgoing, "message sent or queued",
                   "messages sent or queued"),
                  (self.events, "history event", "history events"),
                  (self.addresses, "undeliverable mark",
                   "undeliverable marks"),
                  (self.copies, "set-aside copy", "set-aside copies")]
        said = ", ".join(f"{n} {one if n == 1 else many}"
                         for n, one, many in counts if n)
        if self.unsearched:
            said += (f" ({self.unsearched} of them not searchable in "
                     "full: mail linked to the person or their school or "
                     "cluster, so it may name them)")
        return said


class _Scrubber:
    """Replaces one person's address, and their names where the address
    is, inside any value."""

    def __init__(self, address: str, placeholder: str,
                 names: Iterable[str]) -> None:
        self.address = address
        self.placeholder = placeholder
        self.pattern = _pattern(address)
        self.names = _name_patterns(names)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if not self.pattern.search(value):
                return value
            return self.names_out(self.pattern.sub(self.placeholder, value))
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

    def names_out(self, text: Any) -> Any:
        """`text` with the person's names erased, address or not: in what
        others wrote about them ("Ann Planted ran our training")."""
        if not isinstance(text, str):
            return text
        for name in self.names:
            text = name.sub(ERASED, text)
        return text


def erase(store: Store, config: Config, address: str, now: datetime, *,
          apply: bool) -> Erasure:
    """Replace one person's details in the record by a placeholder, and
    remove the copies of their mail; only say what would change unless
    `apply`. The caller holds the record's lock. Applied, the record is
    committed and compacted at once, so that neither the snapshot nor the
    journal keeps the details (the backups still do: see held_elsewhere).

    What stays: every document, with its statuses, times, kinds and
    links, so the programme's history still counts. What goes: the
    address (everywhere), the names given with it, the text the person
    wrote (comments, subjects), the stored text of mail to or naming them
    (queued mail among it is withdrawn: it could only be sent as it
    stands) and the set-aside copies of their mail or naming them, with
    those that cannot be searched in full and are linked to them or to
    their school or cluster (see _copies). What it does not reach:
    `held_elsewhere`.
    """
    address = normalise(address)
    roles = programme_roles(config, address)
    if roles:
        raise PrivacyError(
            f"{address} is {', '.join(roles)} in {config.path}: the "
            "programme's own people are kept in the config, not the "
            "record; change the config to remove them")
    found = _find(store, address)
    names = _given_names(found)
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
    result.unsearched = len(found.unsearched)
    result.elsewhere = held_elsewhere(config)
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
    setaside.remove_stale(store)  # half-written copies may name them too
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


ERASED_DIGEST = "erased"


def _erase_documents(store: Store, found: _Found, scrub: _Scrubber,
                     theirs: set[str], now: datetime) -> None:
    address = found.address
    erased_events = {e.doc_id for e in found.events}
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
        for comment in store.comments_of(school.doc_id):
            said = scrub(dict(comment))
            said["text"] = ERASED if comment.get("message_id") in theirs \
                else scrub.names_out(said.get("text"))
            if _changed(comment, said):
                replace_personal(store, "comments", comment.doc_id,
                                 _changed(comment, said))
        for event in store.history_of_school(school.doc_id):
            # The start of another's comment naming them, in the history.
            if event.get("event") == "comment" \
                    and event.doc_id not in erased_events:
                line = {"detail": scrub.names_out(event.get("detail"))}
                if _changed(event, line):
                    replace_personal(store, "events", event.doc_id,
                                     _changed(event, line))
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
        # Digests of what they wrote: they could confirm a guess of it.
        # "erased" is no message's digest: a message under this one's name
        # or Message-ID is taken for another, not for this one.
        for digest in ("fingerprint", "content"):
            if fields.get(digest):
                fields[digest] = ERASED_DIGEST
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
