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
    filename: str
    content_type: str
    data: bytes


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
    message: Message = field(repr=False, compare=False)
    fingerprint: str = ""  # SHA-256 of the raw bytes
    omitted: int = 0  # characters of body text past TEXT_LIMIT, not read
    # What is read from the message (its tables, its nomination), kept so
    # that classifying it and acting on it read it once; see `once`.
    derived: dict[str, Any] = field(default_factory=dict, repr=False,
                                    compare=False)

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


def parse(raw: bytes) -> Incoming:
    """Parse raw RFC 5322 bytes; unreadable mail raises SetAside."""
    try:
        parsed = mailparser.parse_from_bytes(raw)
    except Exception as exc:  # mail-parser raises many kinds on broken MIME
        raise SetAside(f"unreadable message: {exc}") from exc
    return _from_mailparser(parsed, hashlib.sha256(raw).hexdigest())


def _from_mailparser(parsed: Any, fingerprint: str) -> Incoming:
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

    return Incoming(
        message_id=_message_id(headers.get("message-id", "")),
        sender=_first(_addresses(parsed.from_)) or Address("", ""),
        to=_addresses(parsed.to),
        cc=_addresses(parsed.cc),
        subject=_clean(str(parsed.subject or "")),
        date=_date(headers.get("date", "")),
        in_reply_to=_message_id(headers.get("in-reply-to", "")),
        references=tuple(
            ref for ref in map(_message_id, _REFERENCE.findall(
                headers.get("references", ""))) if ref),
        headers=headers,
        text=text,
        html=html,
        attachments=tuple(_attachments(parsed.attachments)),
        message=message,
        fingerprint=fingerprint,
        omitted=omitted,
    )


def _bounded(text: str) -> tuple[str, int]:
    """`text` cut to TEXT_LIMIT characters, at a line's end where one is
    near, with CUT_NOTE after; and how many characters were left out."""
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
    """One line of text: folding, line breaks and control characters go."""
    return " ".join(_CONTROL.sub(" ", value).split())


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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
        Address(_clean(str(name)), normalise_address(str(addr)))
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


def _attachments(items: list[dict[str, Any]]) -> list[Attachment]:
    found = []
    for item in items:
        payload = item.get("payload") or ""
        try:
            if item.get("binary"):
                data = base64.b64decode(payload)
            else:
                data = str(payload).encode(item.get("charset") or "utf-8",
                                           errors="replace")
        except (ValueError, LookupError) as exc:
            log.warning("attachment %r could not be decoded: %s",
                        item.get("filename"), exc)
            continue
        found.append(Attachment(
            filename=str(item.get("filename") or ""),
            content_type=str(item.get("mail_content_type") or "").lower(),
            data=data,
        ))
    return found
