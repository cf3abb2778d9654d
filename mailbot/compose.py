"""Outgoing mail, rendered from the Jinja2 templates in templates/.

Each kind of message has a plain-text template `<name>.txt`, whose first
line is `Subject: ...`, and an HTML template `<name>.html`; the message is
sent as multipart/alternative with both. Every message carries the headers
that stop other robots answering it (RFC 3834) and names its kind.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import textwrap
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from mailbot.errors import ConfigError
from mailbot.senders import WIRE_POLICY

KINDS = frozenset({
    "acknowledgment", "welcome", "council-notice", "invitation", "reminder",
    "comment-receipt", "completion-receipt", "visit-request",
    "validator-assignment", "digest", "missing-information", "alert",
})
UK = ZoneInfo("Europe/London")


@dataclass(frozen=True)
class Draft:
    """One intended message, before it is rendered."""

    key: str                   # unique: the same key is never sent twice
    kind: str                  # X-Mailbot-Kind
    template: str              # file name in templates/, without extension
    to: tuple[str, ...]
    context: dict[str, Any] = field(default_factory=dict)
    cc: tuple[str, ...] = ()
    reply_to_id: str = ""      # Message-ID this answers, if any
    references: tuple[str, ...] = ()
    not_before: datetime | None = None
    cluster_id: int | None = None
    school_id: int | None = None


def long_date(value: Any) -> str:
    """'Tuesday 26 January 2027' from a date, datetime or ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        value = value.astimezone(UK) if value.tzinfo else value
    return f"{value:%A} {value.day} {value:%B %Y}"


_LIST_ITEM = re.compile(r"^\s*([-*•–]|\d+[.)])\s")


def reflow(text: str, width: int = 72) -> str:
    """Someone's own words rewrapped to `width`: lines of one paragraph are
    joined first, so that a message written 80 columns wide does not come
    out ragged; list items and blank lines are kept."""
    out: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.extend(textwrap.wrap(" ".join(para), width,
                                     break_long_words=False,
                                     break_on_hyphens=False) or [""])
            para.clear()

    for line in str(text).strip().splitlines():
        if not line.strip():
            flush()
            out.append("")
        elif _LIST_ITEM.match(line):
            flush()
            para.append(line.strip())
        else:
            para.append(line.strip())
    flush()
    return "\n".join(out)


def long_time(value: Any) -> str:
    """'12 January 2027 at 09:30' in UK time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(UK)
    return f"{local.day} {local:%B %Y} at {local:%H:%M}"


class Composer:
    def __init__(self, templates: Path, sender_name: str, address: str,
                 globals_: dict[str, Any] | None = None, salt: str = "") -> None:
        if not templates.is_dir():
            raise ConfigError(templates, "", "templates folder not found")
        self.folder = templates
        self.sender = email.utils.formataddr((sender_name, address))
        self.domain = address.rsplit("@", 1)[1]
        self.salt = salt
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(templates)),
            autoescape=jinja2.select_autoescape(["html"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["long_date"] = long_date
        self.env.filters["long_time"] = long_time
        self.env.filters["reflow"] = reflow
        self.env.globals.update(globals_ or {})

    def check(self, examples: dict[str, dict[str, Any]]) -> None:
        """Render every template with example values, so that a mistake in
        one stops start-up instead of a message."""
        for name, context in examples.items():
            draft = Draft(key="check", kind="digest", template=name,
                          to=("check@example.org",), context=context)
            try:
                self.render(draft)
            except jinja2.TemplateError as exc:
                where, line = _template_frame(exc, self.folder / name)
                raise ConfigError(where, f"line {line}" if line else "",
                                  exc.message or str(exc)) from exc

    def render(self, draft: Draft) -> tuple[str, str, str]:
        """Subject, plain text and HTML of a draft."""
        if draft.kind not in KINDS:
            raise ValueError(f"unknown kind of message {draft.kind!r}")
        text = self.env.get_template(f"{draft.template}.txt").render(draft.context)
        html = self.env.get_template(f"{draft.template}.html").render(draft.context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ConfigError(self.folder / f"{draft.template}.txt", "",
                              "the first line it writes must be 'Subject: ...'")
        return one_line(first[len("Subject:"):]), body.lstrip("\n"), html

    def build(self, draft: Draft, now: datetime) -> EmailMessage:
        subject, text, html = self.render(draft)
        message = EmailMessage(policy=WIRE_POLICY)
        message["From"] = self.sender
        message["To"] = ", ".join(draft.to)
        if draft.cc:
            message["Cc"] = ", ".join(draft.cc)
        message["Subject"] = subject
        message["Date"] = email.utils.format_datetime(now)
        message["Message-ID"] = self.message_id(draft.key)
        if draft.reply_to_id:
            message["In-Reply-To"] = draft.reply_to_id
            refs = [r for r in draft.references if r != draft.reply_to_id]
            message["References"] = " ".join([*refs, draft.reply_to_id])
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        message["X-Mailbot-Kind"] = draft.kind
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        return message

    def message_id(self, key: str) -> str:
        # Derived from the key, so a message rebuilt after a crash keeps
        # the id that replies to it will carry; the record's own salt keeps
        # ids apart between records (a demo, a fresh start).
        seed = f"{self.salt}:{key}".encode()
        digest = hashlib.sha256(seed).hexdigest()[:24]
        return f"<mailbot.{digest}@{self.domain}>"


def one_line(value: str) -> str:
    """A header value with no line breaks, control characters or runs of
    spaces, and nothing a reader could take for an encoded-word."""
    text = " ".join(_CONTROL.sub(" ", value).split())
    return text.replace("=?", "= ?")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _template_frame(exc: jinja2.TemplateError, fallback: Path
                    ) -> tuple[Path, int | None]:
    """The template file and line an error came from, as far as known."""
    if isinstance(exc, jinja2.TemplateSyntaxError) and exc.filename:
        return Path(exc.filename), exc.lineno
    # Jinja2 rewrites tracebacks so that template lines appear as frames.
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith((".txt", ".html")):
            return Path(frame.filename), frame.lineno
    return fallback, None
