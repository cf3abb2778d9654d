"""Incoming mail from an IMAP server, moved to other folders once dealt with.

Keys are "imap:<UIDVALIDITY>:<UID>" of the configured folder. A message
leaves the folder by MOVE (RFC 6851) when the server offers it, else by
COPY, then \\Deleted and UID EXPUNGE (RFC 4315): the copy always exists
before the original goes. imapclient is untyped; this module is its seam.

A connection that drops (a restart, a kick, a network fault) is opened
again with a growing pause, 1 s, 2 s, 4 s... up to a minute, at most
`reconnect_attempts` times for one step; the step then goes on where it
stopped, so no message is fetched or moved twice. If the server
renumbered the folder meanwhile (a new UIDVALIDITY), the UIDs in hand
may name other messages: the fetch starts over under the new numbers,
and a move of a message fetched under the old ones finds it again by its
Message-ID.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

from imapclient import DELETED
from imapclient.exceptions import IMAPClientError

from mailbot.config import MailboxConfig, is_loopback
from mailbot.errors import ConfigError, TransientError
from mailbot.sources import RawMail
from mailbot.sources.imap_idle import DROPPED, TIMEOUT, idle
from mailbot.sources.imap_login import (
    CONNECTION_ERRORS,
    close_quietly,
    open_session,
)
from mailbot.sources.waker import Waker

log = logging.getLogger(__name__)

PREFIX = "imap:"
BATCH = 200
BACKOFF_CAP = 60.0
T = TypeVar("T")

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(?:\r?\n[ \t]+)?(<[^>\s]+>)",
                         re.IGNORECASE | re.MULTILINE)


def backoff(reconnection: int) -> float:
    """The pause before the n-th reconnection of one outage: 1, 2, 4...
    seconds, at most BACKOFF_CAP."""
    return min(2.0 ** (reconnection - 1), BACKOFF_CAP)


def header_message_id(data: bytes) -> str:
    """The Message-ID of a raw message, as found in its header, or ""."""
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    found = _MESSAGE_ID.search(head)
    return found.group(1).decode("ascii", "replace") if found else ""


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
        self._uidnext = 0
        self._known_folders: set[str] = set()
        # Key to Message-ID of what the current fetch handed out, to find
        # a message again if the folder is renumbered before it is moved.
        self._message_ids: dict[str, str] = {}
        self._waker = Waker()
        self._quick_drops = 0

    # ------------------------------------------------------------ protocol

    def fetch(self) -> Iterator[RawMail]:
        """Every undeleted message of the folder, lowest UID first."""
        self._message_ids.clear()
        validity, uids = self._retrying(self._search)
        while uids:
            batch, uids = uids[:BATCH], uids[BATCH:]
            found = self._retrying(partial(self._fetch, batch))
            for uid in batch:
                if self._uidvalidity != validity:
                    break
                data = found.get(uid, {}).get(b"BODY[]")
                if data is None:
                    # Expunged by someone else since the search.
                    continue
                key = f"{PREFIX}{validity}:{uid}"
                self._message_ids[key] = header_message_id(data)
                yield RawMail(key, data)
            if self._uidvalidity != validity:
                log.warning("%s: %s was renumbered (UIDVALIDITY %d, was "
                            "%d); reading it again", self.where,
                            self.config.folder, self._uidvalidity, validity)
                validity, uids = self._retrying(self._search)

    def mark_handled(self, key: str) -> None:
        self._retrying(lambda: self._move(key, self.config.handled_folder))

    def set_aside(self, key: str) -> None:
        self._retrying(lambda: self._move(key, self.config.set_aside_folder))

    def wait(self, timeout: float) -> None:
        """IDLE until the server announces new mail, renewed every
        `idle_renew_seconds`; a plain sleep on a server without IDLE."""
        deadline = time.monotonic() + timeout
        try:
            if self._imap is None:
                self._open()
            if not self._imap.has_capability("IDLE"):
                self._waker.sleep(timeout)
                return
            if self._news_since_fetch():
                return
            while (left := deadline - time.monotonic()) > 0:
                started = time.monotonic()
                span = min(left, self.config.idle_renew_seconds)
                log.debug("%s: IDLE for up to %.1f s", self.where, span)
                outcome = idle(self._imap, self._waker, span)
                if outcome == DROPPED:
                    self._idle_dropped(time.monotonic() - started, deadline)
                    return
                self._quick_drops = 0
                if outcome != TIMEOUT:
                    return
        except (TransientError, ConfigError) as exc:
            # The next poll reports it; here there is only the waiting.
            log.debug("%s: cannot wait on the server: %s", self.where, exc)
            self._waker.sleep(deadline - time.monotonic())
        except (IMAPClientError, *CONNECTION_ERRORS) as exc:
            log.info("%s: waiting for mail failed: %s", self.where, exc)
            self._logout()
            self._waker.sleep(deadline - time.monotonic())

    def interrupt(self) -> None:
        self._waker.wake()

    def _idle_dropped(self, after: float, deadline: float) -> None:
        """The connection ended during IDLE: return, so that the next poll
        connects again, unless the server keeps doing it at once."""
        self._drop()
        log.info("%s: connection lost while waiting for mail", self.where)
        self._quick_drops = self._quick_drops + 1 if after < 1 else 0
        if self._quick_drops >= 2:
            # Not a restart but a habit: do not go round in a tight loop.
            if self._quick_drops == 2:
                log.warning("%s: the server ends IDLE at once; waiting "
                            "without it", self.where)
            self._waker.sleep(deadline - time.monotonic())

    def close(self) -> None:
        self._logout()
        self._waker.close()

    def _logout(self) -> None:
        if self._imap is None:
            return
        with contextlib.suppress(IMAPClientError, OSError):
            self._imap.logout()
        self._drop()

    # ---------------------------------------------------------- connection

    def _open(self) -> None:
        self._imap, status = open_session(self.config, self.where)
        self._note(status)
        log.debug("%s: logged in as %s, %s has UIDVALIDITY %d", self.where,
                  self.config.username, self.config.folder, self._uidvalidity)

    def _note(self, status: dict[bytes, Any]) -> None:
        self._uidvalidity = int(status[b"UIDVALIDITY"])
        self._uidnext = int(status.get(b"UIDNEXT", 0))

    def _drop(self) -> None:
        if self._imap is not None:
            close_quietly(self._imap)
        self._imap = None
        self._known_folders.clear()

    def _guarded(self, step: Callable[[], T]) -> T:
        """Run one step on the open connection, as mailbot's errors."""
        if self._imap is None:
            self._open()
        try:
            return step()
        except CONNECTION_ERRORS as exc:
            self._drop()
            raise TransientError(
                f"IMAP server {self.where} dropped the connection: "
                f"{exc}") from exc
        except IMAPClientError as exc:
            # A NO or BAD (quota, permissions): the connection is fine.
            raise TransientError(
                f"IMAP server {self.where} refused: {exc}") from exc

    def _retrying(self, step: Callable[[], T]) -> T:
        """Like _guarded, but on a lost connection connect again, pausing
        longer each time, at most `reconnect_attempts` tries in all."""
        attempts = max(self.config.reconnect_attempts, 1)
        pauses = 0
        for attempt in range(1, attempts + 1):
            was_open = self._imap is not None
            try:
                return self._guarded(step)
            except TransientError as exc:
                if self._imap is not None or attempt == attempts:
                    raise  # refused by the server, or out of tries
                failure = exc
            if was_open and attempt == 1:
                # A connection that worked and has just dropped (an idle
                # timeout, a kick) is worth one try straight away.
                pause = 0.0
            else:
                pauses += 1
                pause = backoff(pauses)
            log.info("%s: %s; connecting again in %.0f s (try %d of %d)",
                     self.where, failure, pause, attempt + 1, attempts)
            if self._waker.sleep(pause):
                raise TransientError(f"IMAP server {self.where}: stopped "
                                     "while waiting to connect again")
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- steps

    def _search(self) -> tuple[int, list[int]]:
        # Selecting again brings news of the folder: new mail, and a
        # UIDVALIDITY that may have changed.
        self._note(self._imap.select_folder(self.config.folder))
        uids = sorted(int(uid) for uid in self._imap.search(["UNDELETED"]))
        return self._uidvalidity, uids

    def _fetch(self, uids: list[int]) -> dict[int, dict[bytes, Any]]:
        found: dict[int, dict[bytes, Any]] = self._imap.fetch(
            uids, ["BODY.PEEK[]"])
        return found

    def _news_since_fetch(self) -> bool:
        """Has mail arrived since the last search (before IDLE started)?"""
        if not self._uidnext:
            return False
        status = self._imap.folder_status(self.config.folder,
                                          [b"UIDNEXT", b"UIDVALIDITY"])
        return (int(status[b"UIDNEXT"]) != self._uidnext
                or int(status[b"UIDVALIDITY"]) != self._uidvalidity)

    def _move(self, key: str, folder: str) -> None:
        uid = self._current_uid(key)
        if uid is None:
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
        log.debug("%s: moved UID %d to %s", key, uid, folder)

    def _current_uid(self, key: str) -> int | None:
        """The UID of the message a key names, as the folder is numbered
        now; None (with a warning) if it is not there any more."""
        validity, uid = _split_key(key)
        if validity != self._uidvalidity:
            message_id = self._message_ids.get(key, "")
            if not message_id:
                # This UID may now be another message. Leave it; the next
                # fetch brings it again under a new key.
                log.warning("%s: %s now has UIDVALIDITY %d; not moving",
                            key, self.config.folder, self._uidvalidity)
                return None
            found = self._imap.search(
                ["HEADER", "Message-ID", message_id, "UNDELETED"])
            if len(found) != 1:
                log.warning("%s: %s now has UIDVALIDITY %d and %d messages "
                            "with Message-ID %s; not moving", key,
                            self.config.folder, self._uidvalidity,
                            len(found), message_id)
                return None
            log.info("%s: %s was renumbered; %s is now UID %d", key,
                     self.config.folder, message_id, found[0])
            return int(found[0])

        if not self._imap.search(["UID", str(uid), "UNDELETED"]):
            log.warning("%s: no longer in %s; nothing to move",
                        key, self.config.folder)
            return None
        return uid

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


def _split_key(key: str) -> tuple[int, int]:
    try:
        prefix, validity, uid = key.split(":")
        if prefix + ":" != PREFIX:
            raise ValueError
        return int(validity), int(uid)
    except ValueError:
        raise ValueError(f"{key!r} is not an IMAP key") from None
