"""Opening an IMAP session: connect, TLS, LOGIN, SELECT, as mailbot errors.

imapclient traces the protocol to the "imapclient" loggers at DEBUG and
redacts LOGIN lines itself; a filter here also scrubs the password from
any other line those loggers write, so `--verbose` never shows it.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import (
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from mailbot.config import MailboxConfig
from mailbot.errors import ConfigError, TransientError

log = logging.getLogger(__name__)

# What a dropped or unreachable server looks like from imapclient.
CONNECTION_ERRORS = (OSError, IMAPClientAbortError)

REDACTED = "**REDACTED**"


class _Scrubber(logging.Filter):
    """Replaces every known password in a record with REDACTED."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if not secret:
            return
        # As given, quoted by imaplib, and as either appears in a repr().
        quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
        for form in (secret, quoted):
            self.secrets.add(form)
            self.secrets.add(repr(form.encode())[2:-1])

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        scrubbed = text
        for secret in sorted(self.secrets, key=len, reverse=True):
            scrubbed = scrubbed.replace(secret, REDACTED)
        if scrubbed != text:
            record.msg, record.args = scrubbed, None
        return True


_SCRUBBER = _Scrubber()
# A filter on a logger sees only that logger's own records, so each of
# imapclient's loggers gets it.
for _name in ("imapclient", "imapclient.imapclient", "imapclient.imaplib",
              "imapclient.util"):
    logging.getLogger(_name).addFilter(_SCRUBBER)


def text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def open_session(config: MailboxConfig, where: str) -> tuple[Any, Any]:
    """A logged-in IMAPClient with the folder selected, and the SELECT
    response (UIDVALIDITY, UIDNEXT, ...)."""
    password = config.password.value()
    _SCRUBBER.add(password)
    context = ssl.create_default_context()
    try:
        imap = IMAPClient(config.host, config.port,
                          ssl=config.security == "tls",
                          ssl_context=context,
                          timeout=config.timeout_seconds)
    except (OSError, IMAPClientError) as exc:
        raise TransientError(
            f"cannot reach IMAP server {where}: {exc}") from exc

    step = "STARTTLS"
    try:
        if config.security == "starttls":
            imap.starttls(context)
        step = "LOGIN"
        imap.login(config.username, password)
        step = f"opening {config.folder!r}"
        status = imap.select_folder(config.folder)
    except LoginError as exc:
        close_quietly(imap)
        detail = text(exc.args[0]) if exc.args else "refused"
        if "UNAVAILABLE" in detail:
            raise TransientError(
                f"IMAP server {where} cannot check passwords "
                f"now: {detail}") from exc
        raise ConfigError(
            f"IMAP server {where}", "mailbox.username",
            f"login as {config.username!r} refused: {detail} "
            "(check the username and password)") from exc
    except CONNECTION_ERRORS as exc:
        close_quietly(imap)
        raise TransientError(
            f"IMAP server {where} dropped the connection: {exc}") from exc
    except IMAPClientError as exc:
        close_quietly(imap)
        raise ConfigError(f"IMAP server {where}", "mailbox",
                          f"{step} failed: {exc}") from exc

    if not (imap.has_capability("MOVE") or imap.has_capability("UIDPLUS")):
        log.warning("%s: the server has neither MOVE nor UIDPLUS; moved "
                    "messages stay in %s flagged \\Deleted",
                    where, config.folder)
    return imap, status


def close_quietly(imap: Any) -> None:
    with contextlib.suppress(OSError, IMAPClientError):
        imap.shutdown()
