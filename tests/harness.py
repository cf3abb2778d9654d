"""A whole mailbot on a temporary folder, with a clock the test moves."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import email.utils
import glob
import io
import os
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl

from mailbot import config as config_module
from mailbot import daemon, report
from mailbot.app import Mailbot, open_mailbot
from mailbot.clock import ManualClock
from mailbot.config import Config

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "mailbot" / "demo_mail"
UK = ZoneInfo("Europe/London")


def sample(name: str) -> bytes:
    return (SAMPLES / f"{name}.eml").read_bytes()


def faked_clock(at: str) -> dict[str, str]:
    """The environment that starts a child process's clock at `at`
    ("YYYY-MM-DD HH:MM:SS", UTC) and lets it run, through libfaketime.

    The library is preloaded directly rather than through the `faketime`
    wrapper: the wrapper keeps a semaphore in /dev/shm that a killed
    process leaves behind, and a later process given the same pid then
    fails to start ("sem_open: File exists")."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        raise RuntimeError("libfaketime is not installed (Debian: faketime)")
    return {**os.environ, "TZ": "UTC", "LD_PRELOAD": found[0],
            "FAKETIME": f"@{at}", "FAKETIME_DONT_RESET": "1"}


def example_config(tmp_path: Path, **changes: Any) -> Config:
    """config.example.toml, with its data moved under tmp_path."""
    config = config_module.load(ROOT / "config.example.toml")
    config = dataclasses.replace(
        config,
        mailbox=dataclasses.replace(config.mailbox, path=tmp_path / "inbox"),
        sending=dataclasses.replace(config.sending, path=tmp_path / "outbox"),
        store_path=tmp_path / "mailbot.json",
        security=dataclasses.replace(config.security,
                                     key_file=tmp_path / "mailbot.key"),
    )
    return dataclasses.replace(config, **changes)


def make_mail(sender: str, subject: str, body: str, **headers: str) -> bytes:
    """A plain-text message from a person, with overridable headers."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Digital Schools Programme <programme@dsa.example.org>"
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate()
    message["Message-ID"] = email.utils.make_msgid(domain="school.example.org")
    for name, value in headers.items():
        del message[name.replace("_", "-")]
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes()


def completion_mail(sender: str, school: str, sign_off: str = "") -> bytes:
    """A school's plain "we have completed the self-review" message."""
    return make_mail(sender, f"{school} - self-review",
                     "Hello,\n\nWe have now completed the self-review.\n"
                     + (f"\n{sign_off}\n" if sign_off else ""))


class Harness:
    """Drives one mailbot: deliver mail, move the clock, run a cycle."""

    def __init__(self, config: Config, start: str,
                 deliver: Callable[[bytes], None] | None = None,
                 sent: Callable[[], list[EmailMessage]] | None = None) -> None:
        self.config = config
        self.clock = ManualClock(self._moment(start))
        self.bot: Mailbot = open_mailbot(config, self.clock)
        self._deliver = deliver or self._to_maildir
        self._sent = sent or self._from_outbox

    @staticmethod
    def _moment(when: str) -> datetime:
        return datetime.fromisoformat(when).replace(tzinfo=UK)

    def at(self, when: str) -> None:
        """Move the clock to `when`, UK time, e.g. '2027-01-12 09:35'."""
        self.clock.set(self._moment(when))

    def deliver(self, *raws: bytes) -> None:
        for raw in raws:
            self._deliver(raw)

    def cycle(self) -> None:
        daemon.cycle(self.bot)

    def export(self) -> dict[str, Any]:
        return report.export(self.bot.store)

    def close(self) -> None:
        self.bot.close()

    def sent(self, kind: str | None = None, to: str | None = None
             ) -> list[EmailMessage]:
        found = []
        for message in self._sent():
            rcpts = {a.lower() for _, a in email.utils.getaddresses(
                [str(v) for h in ("To", "Cc") for v in message.get_all(h) or []])}
            if kind and str(message["X-Mailbot-Kind"]) != kind:
                continue
            if to and to not in rcpts:
                continue
            found.append(message)
        return found

    def school(self, name: str) -> dict[str, Any]:
        for cluster in self.export()["clusters"]:
            for school in cluster["schools"]:
                if school["name"] == name:
                    return dict(school)
        raise KeyError(name)

    def cluster(self, word: str) -> dict[str, Any]:
        for cluster in self.export()["clusters"]:
            if word.lower() in (cluster["name"] or "").lower():
                return dict(cluster)
        raise KeyError(word)

    # -- the embedded default ------------------------------------------

    def _to_maildir(self, raw: bytes) -> None:
        inbox = self.config.mailbox.path
        for sub in ("tmp", "new", "cur"):
            (inbox / sub).mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}.test.mailbot"
        (inbox / "tmp" / name).write_bytes(raw)
        (inbox / "tmp" / name).rename(inbox / "new" / name)

    def _from_outbox(self) -> list[EmailMessage]:
        outbox = self.config.sending.path
        if not outbox.exists():
            return []
        return [email.message_from_bytes(p.read_bytes(),
                                         policy=email.policy.default)
                for p in sorted(outbox.glob("*.eml"))]  # type: ignore[misc]


def body(message: EmailMessage) -> str:
    """The plain-text part of a message mailbot sent, its lines joined
    (templates wrap paragraphs, so a phrase may span a line break)."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return " ".join(str(part.get_content()).split())


def workbook(rows: list[list[Any]]) -> bytes:
    """An XLSX file of one sheet holding these rows."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
