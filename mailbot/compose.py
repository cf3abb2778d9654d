"""Outgoing mail, rendered from the Jinja2 templates in templates/.

Each kind of message has a plain-text template `<name>.txt`, whose first
line is `Subject: ...`, and an HTML template `<name>.html`; the message is
sent as multipart/alternative with both. Every message carries the headers
that stop other robots answering it (RFC 3834) and names its kind.
"""

from __future__ import annotations

import email.utils
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from mailbot.errors import ConfigError

KINDS = frozenset({
    "acknowledgment", "welcome", "council-notice", "invitation", "reminder",
    "comment-receipt", "completion-receipt", "visit-request",
    "validator-assignment", "digest", "missing-information",
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


def long_time(value: Any) -> str:
    """'12 January 2027 at 09:30' in UK time."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    local = value.astimezone(UK)
    return f"{local.day} {local:%B %Y} at {local:%H:%M}"


class Composer:
    def __init__(self, templates: Path, sender_name: str, address: str,
                 globals_: dict[str, Any] | None = None) -> None:
        if not templates.is_dir():
            raise ConfigError(templates, "", "templates folder not found")
        self.sender = email.utils.formataddr((sender_name, address))
        self.domain = address.rsplit("@", 1)[1]
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
        self.env.globals.update(globals_ or {})

    def check(self, names: list[str]) -> None:
        """Load every template once so a typo stops start-up, not a send."""
        for name in names:
            for ext in ("txt", "html"):
                try:
                    self.env.get_template(f"{name}.{ext}")
                except jinja2.TemplateError as exc:
                    raise ConfigError(f"templates/{name}.{ext}", "",
                                      str(exc)) from exc

    def render(self, draft: Draft) -> tuple[str, str, str]:
        """Subject, plain text and HTML of a draft."""
        if draft.kind not in KINDS:
            raise ValueError(f"unknown kind of message {draft.kind!r}")
        text = self.env.get_template(f"{draft.template}.txt").render(draft.context)
        html = self.env.get_template(f"{draft.template}.html").render(draft.context)
        first, _, body = text.partition("\n")
        if not first.startswith("Subject:"):
            raise ConfigError(f"templates/{draft.template}.txt", "",
                              "the first line must be 'Subject: ...'")
        return one_line(first[len("Subject:"):]), body.lstrip("\n"), html

    def build(self, draft: Draft, now: datetime) -> EmailMessage:
        subject, text, html = self.render(draft)
        message = EmailMessage(policy=SMTP)
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
        # the id that replies to it will carry.
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
        return f"<mailbot.{digest}@{self.domain}>"


def one_line(value: str) -> str:
    """A header value with no line breaks or runs of spaces."""
    return " ".join(value.split())
