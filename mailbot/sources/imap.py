"""Incoming mail from an IMAP server, moved to other folders once dealt with.

Keys are "imap:<UIDVALIDITY>:<UID>" of the configured folder. A message
leaves the folder by MOVE (RFC 6851) when the server offers it, else by
COPY, then \\Deleted and UID EXPUNGE (RFC 4315): the copy always exists
before the original goes. imapclient is untyped; this module is its seam.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import (
    IMAPClientAbortError,
    IMAPClientError,
    LoginError,
)

from mailbot.config import MailboxConfig, is_loopback
from mailbot.errors import ConfigError, TransientError
from mailbot.sources import RawMail

log = logging.getLogger(__name__)

PREFIX = "imap:"
BATCH = 200
T = TypeVar("T")

# What a dropped or unreachable server looks like from imapclient.
_CONNECTION_ERRORS = (OSError, IMAPClientAbortError)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


class ImapSource:
    """A `MailSource` over one folder of an IMAP mailbox."""

    def __init__(self, config: MailboxConfig) -> None:
        if config.security not in ("tls", "starttls", "none"):
            raise ConfigError("mailbox", "mailbox.security",
                              "must be tls, starttls or none")
        self.config = config
        self.where = f"{config.host}:{config.port}"
        if config.security == "none" and not is_loopback(config.host):
            log.warning("%s: mailbox.security is none: the password and all "
                        "mail cross the network unencrypted", self.where)
        self._imap: Any = None
        self._uidvalidity = 0
        self._known_folders: set[str] = set()

    # ------------------------------------------------------------ protocol

    def fetch(self) -> Iterator[RawMail]:
        """Every undeleted message of the folder, lowest UID first."""
        uids = self._retrying(self._search)
        for start in range(0, len(uids), BATCH):
            batch = uids[start:start + BATCH]
            found = self._guarded(partial(self._fetch, batch))
            for uid in batch:
                data = found.get(uid, {}).get(b"BODY[]")
                if data is None:
                    # Expunged by someone else since the search.
                    continue
                yield RawMail(f"{PREFIX}{self._uidvalidity}:{uid}", data)

    def mark_handled(self, key: str) -> None:
        self._retrying(lambda: self._move(key, self.config.handled_folder))

    def set_aside(self, key: str) -> None:
        self._retrying(lambda: self._move(key, self.config.set_aside_folder))

    def close(self) -> None:
        if self._imap is None:
            return
        with contextlib.suppress(IMAPClientError, OSError):
            self._imap.logout()
        self._drop()

    # ---------------------------------------------------------- connection

    def _connect(self) -> None:
        config = self.config
        context = ssl.create_default_context()
        try:
            imap = IMAPClient(config.host, config.port,
                              ssl=config.security == "tls",
                              ssl_context=context,
                              timeout=config.timeout_seconds)
        except (OSError, IMAPClientError) as exc:
            raise TransientError(
                f"cannot reach IMAP server {self.where}: {exc}") from exc

        step = "STARTTLS"
        try:
            if config.security == "starttls":
                imap.starttls(context)
            step = "LOGIN"
            imap.login(config.username, config.password.value())
            step = f"opening {config.folder!r}"
            status = imap.select_folder(config.folder)
        except LoginError as exc:
            _close_quietly(imap)
            detail = _text(exc.args[0]) if exc.args else "refused"
            if "UNAVAILABLE" in detail:
                raise TransientError(
                    f"IMAP server {self.where} cannot check passwords "
                    f"now: {detail}") from exc
            raise ConfigError(
                f"IMAP server {self.where}", "mailbox.username",
                f"login as {config.username!r} refused: {detail} "
                "(check the username and password)") from exc
        except _CONNECTION_ERRORS as exc:
            _close_quietly(imap)
            raise TransientError(
                f"IMAP server {self.where} dropped the connection: "
                f"{exc}") from exc
        except IMAPClientError as exc:
            _close_quietly(imap)
            raise ConfigError(f"IMAP server {self.where}", "mailbox",
                              f"{step} failed: {exc}") from exc

        self._imap = imap
        self._uidvalidity = int(status[b"UIDVALIDITY"])
        if not (imap.has_capability("MOVE")
                or imap.has_capability("UIDPLUS")):
            log.warning("%s: the server has neither MOVE nor UIDPLUS; moved "
                        "messages stay in %s flagged \\Deleted",
                        self.where, config.folder)
        log.debug("%s: logged in as %s, %s has UIDVALIDITY %d", self.where,
                  config.username, config.folder, self._uidvalidity)

    def _drop(self) -> None:
        self._imap = None
        self._known_folders.clear()

    def _guarded(self, step: Callable[[], T]) -> T:
        """Run one step on the open connection, as mailbot's errors."""
        if self._imap is None:
            self._connect()
        try:
            return step()
        except _CONNECTION_ERRORS as exc:
            self._drop()
            raise TransientError(
                f"IMAP server {self.where} dropped the connection: "
                f"{exc}") from exc
        except IMAPClientError as exc:
            # A NO or BAD (quota, permissions): the connection is fine.
            raise TransientError(
                f"IMAP server {self.where} refused: {exc}") from exc

    def _retrying(self, step: Callable[[], T]) -> T:
        """Like _guarded, but once more on a fresh connection if an old one
        had been dropped while mailbot was not looking (idle timeouts)."""
        reused = self._imap is not None
        try:
            return self._guarded(step)
        except TransientError:
            if not reused or self._imap is not None:
                raise
        log.info("%s: connection lost; connecting again", self.where)
        return self._guarded(step)

    # -------------------------------------------------------------- steps

    def _search(self) -> list[int]:
        # Selecting again brings news of the folder: new mail, and a
        # UIDVALIDITY that may have changed.
        status = self._imap.select_folder(self.config.folder)
        self._uidvalidity = int(status[b"UIDVALIDITY"])
        return sorted(int(uid) for uid in self._imap.search(["UNDELETED"]))

    def _fetch(self, uids: list[int]) -> dict[int, dict[bytes, Any]]:
        found: dict[int, dict[bytes, Any]] = self._imap.fetch(
            uids, ["BODY.PEEK[]"])
        return found

    def _move(self, key: str, folder: str) -> None:
        uid = self._uid_from_key(key)
        if uid is None:
            return
        if not self._imap.search(["UID", str(uid), "UNDELETED"]):
            log.warning("%s: no longer in %s; nothing to move",
                        key, self.config.folder)
            return
        self._ensure_folder(folder)

        if self._imap.has_capability("MOVE"):
            self._imap.move([uid], folder)
        else:
            # The copy exists before the original is flagged, so a failure
            # at any point leaves the message in one place or both.
            self._imap.copy([uid], folder)
            self._imap.add_flags([uid], [DELETED], silent=True)
            if self._imap.has_capability("UIDPLUS"):
                self._imap.uid_expunge([uid])
        log.debug("%s: moved to %s", key, folder)

    def _uid_from_key(self, key: str) -> int | None:
        try:
            prefix, validity, uid = key.split(":")
            if prefix + ":" != PREFIX:
                raise ValueError
            numbers = int(validity), int(uid)
        except ValueError:
            raise ValueError(f"{key!r} is not an IMAP key") from None
        if numbers[0] != self._uidvalidity:
            # The server renumbered the folder: this UID may now be
            # another message. Leave it; the next fetch brings new keys.
            log.warning("%s: %s now has UIDVALIDITY %d; not moving", key,
                        self.config.folder, self._uidvalidity)
            return None
        return numbers[1]

    def _ensure_folder(self, folder: str) -> None:
        if folder in self._known_folders:
            return
        if not self._imap.folder_exists(folder):
            try:
                self._imap.create_folder(folder)
                log.info("%s: created folder %r", self.where, folder)
            except IMAPClientError:
                # Someone else may have created it meanwhile.
                if not self._imap.folder_exists(folder):
                    raise
            try:
                self._imap.subscribe_folder(folder)
            except IMAPClientError as exc:
                log.warning("%s: cannot subscribe to %r: %s",
                            self.where, folder, exc)
        self._known_folders.add(folder)


def _close_quietly(imap: Any) -> None:
    with contextlib.suppress(OSError, IMAPClientError):
        imap.shutdown()
