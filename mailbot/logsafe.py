"""Passwords never reach a log, whatever the level and whoever logs, nor
terminal controls from mail a log or a terminal.

imapclient traces the IMAP protocol at DEBUG (and redacts LOGIN itself);
aiosmtplib does not log today, but a later version, a test server or a
traceback might write a password or an AUTH exchange. `install` makes
every log record pass through one `Redactor` as it is made, before any
handler or filter sees it, so that no handler can be missed: it replaces

- each configured secret, as written, as Python's repr() or imaplib's
  quoting shows it, and in base64 (as SMTP AUTH and IMAP AUTHENTICATE
  carry it, at any alignment);
- everything after LOGIN (the user name and password of an IMAP LOGIN)
  and after the mechanism of AUTHENTICATE and AUTH (the initial response),
  as commands, in upper case, on a line of a protocol trace;
- the signed part of every person's reference (`p-x9c2v8b7n6`, see
  tokens.py), wherever it stands: in a Message-ID, a subject, a file
  name. A member of staff's reference helps authenticate their commands
  (commands.py), so it is a credential, and every message to staff
  carries it.

Each record's message also has its control characters written out
(`printable`): a name in a nomination may carry an escape sequence meant
for whoever reads the log in a terminal. The command line writes what it
shows of the record the same way.

A record's message is formatted once, when it is made, and kept as plain
text; its traceback too. The cost is only paid for records that a logger
lets through at its level.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mailbot.config import Secret
from mailbot.errors import ConfigError
from mailbot.tokens import MAC_CHARS

REDACTED = "**REDACTED**"

# Shortest secret (or base64 run) replaced: a shorter one would blank out
# ordinary words of the log. Passwords this short are refused by any
# server worth the name; they are still covered by the LOGIN and AUTH rule.
MIN_SECRET = 4

# A protocol command that carries credentials, at the start of a line, a
# quoted or repr'd bytes literal or after a ">" of a trace: an IMAP
# "TAG LOGIN user password", "[TAG ]AUTHENTICATE MECH initial-response"
# or SMTP "AUTH MECH initial-response".
_COMMAND = re.compile(
    r"(?P<head>(?:^|[\s'\">]|b['\"])"
    r"(?:[A-Za-z0-9.]+ LOGIN|(?:[A-Za-z0-9.]+ )?AUTHENTICATE +[A-Z0-9_-]+"
    r"|AUTH +[A-Z0-9_-]+))"
    r"(?P<rest> +[^\r\n'\"]*(?:\"[^\r\n]*)?)",
    re.MULTILINE)

# A person's signed reference, as tokens.py writes it (lower case, but any
# case is masked): "p-" stays, to show that one was there.
_PERSON_REFERENCE = re.compile(
    r"(?<![0-9a-z])(?P<head>p-)[a-z2-7]{" + str(MAC_CHARS) + r"}(?![0-9a-z])",
    re.IGNORECASE)


# C0 and C1 controls but tab and newline, and DEL: what a terminal acts on.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# The same in JSON text, whose encoder escapes C0 but not DEL or C1.
_JSON_UNPRINTABLE = re.compile(r"[\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character but tab and newline written
    out as \\xNN, to show on a terminal or in a log."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def printable_json(text: str) -> str:
    """JSON text (ensure_ascii=False) with DEL and C1 controls escaped as
    JSON escapes them: the same value, safe on a terminal."""
    return _JSON_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class Redactor(logging.Filter):
    """A filter that rewrites a record with its secrets replaced; it never
    drops one. Used on its own as a filter, or by `install` for every
    record made."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._forms: set[str] = set()
        # The forms, longest first, as redact replaces them: sorted when
        # one is added rather than for each record made.
        self._longest_first: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        if len(secret) < MIN_SECRET:
            return
        quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
        for form in (secret, quoted):
            self._forms.add(form)
            self._forms.add(repr(form)[1:-1])
            self._forms.add(repr(form.encode())[2:-1])
        self._forms.update(_base64_forms(secret.encode()))
        self._longest_first = sorted(self._forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        # Each pattern is run only on text that holds what every match of
        # it must: "LOGIN" or "AUTH" (the commands are matched in upper
        # case only), "p-" or "P-" (no other character matches p when
        # case is ignored). Most log lines hold neither: the patterns,
        # tried at every character, were most of the cost of each line
        # a message logs.
        if "LOGIN" in text or "AUTH" in text:
            text = _COMMAND.sub(lambda m: f"{m['head']} {REDACTED}", text)
        if "p-" in text or "P-" in text:
            text = _PERSON_REFERENCE.sub(lambda m: f"{m['head']}{REDACTED}",
                                         text)
        for form in self._longest_first:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format: keep what there is, as text
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = printable(self.redact(message)), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(
                traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def _base64_forms(secret: bytes) -> set[str]:
    """The base64 text that the secret alone decides, at each of the three
    alignments it may have inside a longer encoded string (as in SMTP
    AUTH PLAIN's "\\0user\\0password"); and its own encoding, whole."""
    forms = {base64.b64encode(secret).decode().rstrip("=")}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret).decode()
        # Drop the group the padding shares, and the one the secret shares
        # with what comes after it.
        start = 4 if offset else 0
        end = 4 * ((offset + len(secret)) // 3)
        core = encoded[start:end]
        if len(core) >= 2 * MIN_SECRET:
            forms.add(core)
    return {form for form in forms if len(form) >= MIN_SECRET}


_REDACTOR = Redactor()
_factory: Callable[..., logging.LogRecord] | None = None


def install(secrets: Iterable[str] = ()) -> Redactor:
    """Redact every log record made from now on (once per process; later
    calls only add secrets). Returns the redactor, to add more."""
    global _factory
    for secret in secrets:
        _REDACTOR.add(secret)
    if _factory is None:
        made = logging.getLogRecordFactory()
        _factory = made

        def redacted(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = made(*args, **kwargs)
            _REDACTOR.filter(record)
            return record

        logging.setLogRecordFactory(redacted)
    return _REDACTOR


def add(secret: str) -> None:
    """Redact `secret` too from now on (a token fetched while running)."""
    _REDACTOR.add(secret)


def secrets_of(config: Any) -> Iterator[str]:
    """The value of every `Secret` in a config, however deep; one that
    cannot be read now is skipped (the command that needs it says why)."""
    seen: set[int] = set()

    def walk(value: Any) -> Iterator[str]:
        if id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, Secret):
            try:
                found = value.value()
            except ConfigError:
                return
            yield found
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for item in dataclasses.fields(value):
                yield from walk(getattr(value, item.name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                yield from walk(item)

    yield from walk(config)


def uninstall() -> None:
    """Undo `install` and forget its secrets (for tests)."""
    global _factory, _REDACTOR
    if _factory is not None:
        logging.setLogRecordFactory(_factory)
        _factory = None
    _REDACTOR = Redactor()
