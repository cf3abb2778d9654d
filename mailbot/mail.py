"""One incoming message, parsed once, as the rest of mailbot sees it.

mail-parser does the MIME work; this module is the seam that turns its
loosely typed result into a frozen `Incoming` so that `Any` stops here.

Huge mail costs no more than large mail: mailbot reads the first
TEXT_LIMIT characters of a body's text (and HTML_LIMIT of its HTML). The
rest is neither classified nor kept in the record; the text ends with a
note saying how much was left out, and the whole message stays in the
mailbox folders. Attachments are read whole (within their own bounds in
spreadsheets.py), so a list of schools attached to a long message is
still read; a table pasted into the body after the limit is not.

Attachments are bounded too: at most MAX_ATTACHMENTS of them are read,
none larger than MAX_ATTACHMENT_BYTES, and MAX_ATTACHMENTS_TOTAL bytes in
all. One past a bound is not decoded: it stays in the message as an
Attachment with no data and `unread` saying why (a spreadsheet left unread
sets the message aside, see spreadsheets.grids). The whole message is
bounded first: the standard library's parser holds all of a message in
memory several times over, so a message over MAX_MESSAGE_BYTES is not
parsed at all but set aside for a person.

An attachment's name is text to show, never a path: nothing in mailbot
makes a file name from it.
"""

from __future__ import annotations

import base64
import email.errors
import email.header
import email.utils
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from html.parser import HTMLParser
from typing import Any, TypeVar, cast

import mailparser

from mailbot.errors import SetAside

log = logging.getLogger(__name__)

# How much of a body is read: enough for any letter, any nomination typed
# or pasted into a message, and the start of a long thread; a pasted log
# or a document in the body is cut. Characters, not bytes.
TEXT_LIMIT = 64 * 1024
# HTML says the same with far more markup: Word's table of forty schools
# is well under a hundred KB.
HTML_LIMIT = 512 * 1024
# Ends a text cut at TEXT_LIMIT. It names nothing that mailbot looks for
# (no phrase, label, school or council), so it changes no reading.
CUT_NOTE = ("[mailbot read the first {kept:,} characters of this message; "
            "the other {omitted:,} are in the copy kept in the mailbox.]")

# Attachments: enough for any nomination (one spreadsheet, perhaps a
# letter and a few photos), well under what a person attaches in practice,
# and small enough that decoding them costs little next to parsing the
# message. Bytes are decoded bytes.
MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_ATTACHMENTS_TOTAL = 25 * 1024 * 1024
# Attachments not read that are still listed (by name, with no data);
# the rest are only counted in the log.
MAX_UNREAD_LISTED = 100
# The largest message read. Parsing costs about six times a message's
# size in memory (measured: 40 MB took 230 MB); 25 MB of attachments is
# 34 MB as base64 on the wire, so this reads anything within the bounds
# above and is past what common mail servers accept (25 to 35 MB). The
# sources look at a message's size before they read it.
MAX_MESSAGE_BYTES = 48 * 1024 * 1024

T = TypeVar("T")


def normalise_address(address: str) -> str:
    """An address as mailbot compares it: no spaces, no brackets, lower case."""
    return "".join(address.split()).strip("<>").lower()


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    def __str__(self) -> str:
        return email.utils.formataddr((self.name, self.email))


@dataclass(frozen=True)
class Attachment:
    filename: str  # as the sender gave it: text to show, never a path
    content_type: str
    data: bytes
    unread: str = ""  # why the data was not read ("" if it was)


@dataclass(frozen=True)
class Incoming:
    """What mailbot knows of one message after parsing it."""

    message_id: str
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    in_reply_to: str
    references: tuple[str, ...]
    headers: dict[str, str]
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    raw: bytes = field(repr=False, compare=False)  # as it came
    fingerprint: str = ""  # SHA-256 of the raw bytes
    omitted: int = 0  # characters of body text past TEXT_LIMIT, not read
    # What is read from the message (its tables, its nomination), kept so
    # that classifying it and acting on it read it once; see `once`.
    derived: dict[str, Any] = field(default_factory=dict, repr=False,
                                    compare=False)

    @property
    def message(self) -> Message:
        """The message as the standard library parses it, which is what
        mail-parser read: kept from the parse, or parsed again from `raw`
        where this Incoming came from another process (it is not sent
        with it: few messages need it, and it costs as much to send as to
        make again)."""
        message: Message | None = self.__dict__.get("_message")
        if message is None:
            message = email.message_from_bytes(self.raw)
            object.__setattr__(self, "_message", message)
        return message

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_message", None)
        return state

    @property
    def ref(self) -> str:
        """What names this message in the keys of the mail it causes: its
        Message-ID, or, lacking one, a digest of its bytes."""
        return self.message_id or f"<sha256:{self.fingerprint[:32]}>"

    def header(self, name: str) -> str:
        """The first value of a header, or '' (names compare without case)."""
        return self.headers.get(name.lower(), "")

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Every Message-ID this message says it answers, nearest first."""
        ids = [self.in_reply_to] if self.in_reply_to else []
        ids += [ref for ref in reversed(self.references) if ref not in ids]
        return tuple(ids)

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` the first time `key` is asked of this message, and
        the same answer after. For what is derived from the message alone:
        the answer must not depend on anything else, nor be changed."""
        if key not in self.derived:
            self.derived[key] = compute()
        return cast(T, self.derived[key])


def too_large(size: int) -> str:
    """Why a message of `size` bytes is not read."""
    return (f"message of {size:,} bytes is larger than mailbot reads "
            f"({MAX_MESSAGE_BYTES:,} bytes); it is kept in the mailbox for "
            "a person")


class _MailParser(mailparser.MailParser):  # type: ignore[misc]
    """mail-parser's parse without the two dictionaries of every header,
    decoded, that it builds last for its own output (`mail`,
    `mail_partial`, and their JSON): mailbot reads the parsed parts and
    headers themselves, and those dictionaries cost a tenth of a parse
    (measured)."""

    def _make_mail(self, complete: bool = True) -> dict[str, Any]:
        return {}


def parse(raw: bytes) -> Incoming:
    """Parse raw RFC 5322 bytes; unreadable mail raises SetAside."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise SetAside(too_large(len(raw)))
    try:
        parsed = _MailParser.from_bytes(raw)
    except Exception as exc:  # mail-parser raises many kinds on broken MIME
        raise SetAside(f"unreadable message: {exc}") from exc
    return _from_mailparser(parsed, raw)


def _from_mailparser(parsed: Any, raw: bytes) -> Incoming:
    message: Message = parsed.message
    headers: dict[str, str] = {}
    for name, value in message.items():
        name = name.lower()
        if name not in headers:
            headers[name] = _clean(_decoded(value))

    text = "\n".join(parsed.text_plain).replace("\r\n", "\n")
    html = "\n".join(parsed.text_html)[:HTML_LIMIT]
    if not text.strip() and html:
        text = html_to_text(html)
    text, omitted = _bounded(text)

    message_id = _message_id(headers.get("message-id", ""))
    fingerprint = hashlib.sha256(raw).hexdigest()
    incoming = Incoming(
        message_id=message_id,
        sender=_first(_addresses(parsed.from_)) or Address("", ""),
        to=_addresses(parsed.to),
        cc=_addresses(parsed.cc),
        subject=_short(str(parsed.subject or "")),
        date=_date(headers.get("date", "")),
        in_reply_to=_message_id(headers.get("in-reply-to", "")),
        references=tuple(
            ref for ref in map(_message_id, _REFERENCE.findall(
                headers.get("references", ""))) if ref),
        headers=headers,
        text=text,
        html=html,
        attachments=tuple(_attachments(parsed.attachments,
                                       message_id or fingerprint[:16])),
        raw=raw,
        fingerprint=fingerprint,
        omitted=omitted,
    )
    object.__setattr__(incoming, "_message", message)
    return incoming


def _bounded(text: str) -> tuple[str, int]:
    """`text` cut to TEXT_LIMIT characters, at a line's end where one is
    near, with CUT_NOTE after; and how many characters were left out."""
    text = _BIDI.sub("", text)
    if len(text) <= TEXT_LIMIT:
        return text, 0
    cut = text.rfind("\n", TEXT_LIMIT // 2, TEXT_LIMIT) + 1 or TEXT_LIMIT
    omitted = len(text) - cut
    note = CUT_NOTE.format(kept=cut, omitted=omitted)
    return f"{text[:cut].rstrip()}\n\n{note}\n", omitted


def html_to_text(html: str) -> str:
    """Visible text of an HTML body, one line per block and table row."""
    reader = _TextReader()
    reader.feed(html)
    reader.close()
    text = "".join(reader.parts)
    lines = (line.rstrip("\t ").strip() for line in text.splitlines())
    return "\n".join(lines).strip() + "\n"


class _TextReader(HTMLParser):
    """One pass over the tags, so that deeply nested mail costs no more
    than flat mail of the same size."""

    BLOCKS = frozenset({"p", "div", "tr", "li", "h1", "h2", "h3", "h4",
                        "table", "ul", "ol", "blockquote"})
    HIDDEN = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in ("td", "th"):
            self.parts.append("\t")
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def _clean(value: str) -> str:
    """One line of text: folding, line breaks, control characters and the
    bidirectional overrides that could make an address or a name read
    differently to staff all go."""
    return " ".join(_CONTROL.sub(" ", value).split())


def _short(value: str) -> str:
    """`_clean`, and at most HEADER_LIMIT characters: for what the record
    keeps of a subject or a name."""
    text = _clean(value[:HEADER_LIMIT * 4])
    return text if len(text) <= HEADER_LIMIT else text[:HEADER_LIMIT - 1] + "…"


# What mailbot keeps of a subject or a name: a person's fits many times
# over; a 2 MB subject would otherwise be kept whole in the record.
HEADER_LIMIT = 998
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
# Embeddings, overrides and isolates: taken out of the text read (names
# of clusters and schools come from it), so that nothing shown to staff
# reads in an order other than the one it is stored in.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")


def _decoded(value: Any) -> str:
    """A header's text with RFC 2047 encoded-words decoded; raw 8-bit
    headers (RFC 6532) are read as UTF-8, else as Windows-1252."""
    if isinstance(value, str) and "=?" not in value:
        return value  # no encoded-word: decode_header would return it as is
    try:
        parts = email.header.decode_header(value)
    except (ValueError, LookupError, TypeError, UnicodeError,
            email.errors.HeaderParseError):
        return str(value)
    text = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            text.append(chunk)
            continue
        for codec in (charset, "utf-8", "cp1252"):
            if not codec or codec == "unknown-8bit":
                continue
            try:
                text.append(chunk.decode(codec))
                break
            except (LookupError, UnicodeDecodeError):
                continue
        else:
            text.append(chunk.decode("latin-1"))
    return "".join(text)


def _message_id(value: str) -> str:
    """A Message-ID as mailbot keeps and echoes it, or '' for anything that
    is not one (unclosed, nested brackets, 8-bit or control characters):
    what mailbot cannot trust it does not repeat in a reply's headers."""
    bracketed = _REFERENCE.findall(value)
    if bracketed:
        value = bracketed[0]  # "<id> (a comment)" names the id first
    elif "<" in value or ">" in value:
        return ""  # unclosed or stray brackets
    value = "".join(value.split())
    if value and not value.startswith("<"):
        value = f"<{value}>"
    return value if _MESSAGE_ID.fullmatch(value) else ""


_REFERENCE = re.compile(r"<[^<>]*>")
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+>")


def _addresses(pairs: Any) -> tuple[Address, ...]:
    """mail-parser's decoded (name, address) pairs, tidied."""
    return tuple(
        Address(_short(str(name)), normalise_address(str(addr)))
        for name, addr in pairs or () if "@" in str(addr)
    )


def _first(addresses: tuple[Address, ...]) -> Address | None:
    return addresses[0] if addresses else None


def _date(value: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def _attachments(items: list[dict[str, Any]], ref: str) -> list[Attachment]:
    """mail-parser's attachments, decoded within the bounds above.

    mail-parser keeps a base64 part as the text that came (and re-encodes
    any other part to base64), so an attachment's size is known from its
    text before it is decoded: one past a bound is never decoded.
    """
    found: list[Attachment] = []
    read = unread = total = 0
    for item in items:
        filename = str(item.get("filename") or "")
        content_type = str(item.get("mail_content_type") or "").lower()
        payload = item.get("payload") or ""
        binary = bool(item.get("binary"))
        # Base64 is 4 characters for 3 bytes, line breaks aside: counted
        # without decoding (a text part, in characters).
        size = len(payload)
        if binary and isinstance(payload, str):
            size = (size - payload.count("\n") - payload.count("\r")) * 3 // 4
        reason = ""
        if read >= MAX_ATTACHMENTS:
            reason = f"more than {MAX_ATTACHMENTS} attachments"
        elif size > MAX_ATTACHMENT_BYTES:
            reason = (f"about {size:,} bytes, over the "
                      f"{MAX_ATTACHMENT_BYTES:,} read from one attachment")
        elif total + size > MAX_ATTACHMENTS_TOTAL:
            reason = (f"over the {MAX_ATTACHMENTS_TOTAL:,} bytes read from "
                      "the attachments of one message")
        if reason:
            unread += 1
            if unread <= MAX_UNREAD_LISTED:
                found.append(Attachment(filename, content_type, b"", reason))
            continue
        try:
            if binary:
                data = base64.b64decode(payload)
            else:
                data = str(payload).encode(item.get("charset") or "utf-8",
                                           errors="replace")
        except (ValueError, LookupError) as exc:
            log.warning("%s: attachment %s could not be decoded: %s", ref,
                        shown_name(filename), exc)
            continue
        read += 1
        total += len(data)
        found.append(Attachment(filename, content_type, data))
    if unread:
        names = ", ".join(shown_name(a.filename) for a in found
                          if a.unread)
        log.warning("%s: %d of %d attachments not read (bounds: %d "
                    "attachments, %d bytes each, %d in all): %s", ref,
                    unread, len(items), MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES,
                    MAX_ATTACHMENTS_TOTAL, _shortened(names, 500))
    return found


def shown_name(filename: str) -> str:
    """An attachment's name as a log line or a reason shows it: quoted,
    control characters escaped, and not too long."""
    return repr(_shortened(filename, 80)) if filename else "(no name)"


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
