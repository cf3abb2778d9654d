"""Incoming mail from an IMAP server, moved to other folders once dealt with.

Keys are "imap:<UIDVALIDITY>:<UID>" of the configured folder. A message
leaves the folder by MOVE (RFC 6851) when the server offers it, else by
COPY, then \\Deleted and UID EXPUNGE (RFC 4315): the copy always exists
before the original goes. Moves wait in a queue until `flush()`, which
makes them with one command per folder (and one SEARCH to check that the
messages are still there), not one round trip per message. imapclient is
untyped; this module is its seam.

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
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, TypeVar

from imapclient import DELETED
from imapclient.exceptions import IMAPClientError

from mailbot.config import MailboxConfig, is_loopback
from mailbot.errors import ConfigError, TransientError
from mailbot.mail import MAX_MESSAGE_BYTES, too_large
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
# At most this many bytes of mail in one FETCH: a message larger than a
# fetch's share of it (_fetch_share) has its size looked at first, so that
# a few large ones never fill memory.
FETCH_BYTES = 64 * 1024 * 1024
# At most this many characters of UIDs in one command (a MOVE, COPY,
# SEARCH or STORE), to stay well inside what servers accept on a command
# line (RFC 7162 advises 8,192 octets). Runs are written as ranges, so a
# set holds hundreds of messages or thousands: a MOVE costs a server
# about as much for one message as for a thousand.
SET_CHARS = 4000
BACKOFF_CAP = 60.0
T = TypeVar("T")

# The part of a header FETCH asks for to learn a message's Message-ID.
_ID_FIELD = "HEADER.FIELDS (MESSAGE-ID)"
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
        # Moves asked for and not yet made: key to folder, in order.
        self._queued: dict[str, str] = {}
        self._waker = Waker()
        self._quick_drops = 0

    # ------------------------------------------------------------ protocol

    def fetch(self) -> Iterator[RawMail]:
        """Every undeleted message of the folder, lowest UID first."""
        self._message_ids.clear()
        validity, uids, large = self._retrying(self._search)
        while uids:
            batch, uids = _next_fetch(uids, self._retrying(
                partial(self._sizes, validity, uids[:BATCH], large)))
            readable = [uid for uid, size in batch if size <= MAX_MESSAGE_BYTES]
            unread = [uid for uid, size in batch if size > MAX_MESSAGE_BYTES]
            found = self._retrying(partial(self._fetch, validity, readable)) \
                if readable else {}
            heads = self._retrying(partial(self._message_ids_of, validity,
                                           unread)) if unread else {}
            for uid, size in batch:
                if self._uidvalidity != validity:
                    break
                key = f"{PREFIX}{validity}:{uid}"
                if size > MAX_MESSAGE_BYTES:
                    if uid not in heads:
                        # Expunged by someone else since the search (the
                        # server may still tell its size).
                        continue
                    self._message_ids[key] = heads[uid]
                    yield RawMail(key, b"", too_large(size))
                    continue
                data = found.get(uid, {}).get(b"BODY[]")
                if data is None:
                    # Expunged by someone else since the search.
                    continue
                self._message_ids[key] = header_message_id(data)
                yield RawMail(key, data)
            if self._uidvalidity != validity:
                log.warning("%s: %s was renumbered (UIDVALIDITY %d, was "
                            "%d); reading it again", self.where,
                            self.config.folder, self._uidvalidity, validity)
                validity, uids, large = self._retrying(self._search)

    def mark_handled(self, key: str) -> None:
        self._queue(key, self.config.handled_folder)

    def set_aside(self, key: str) -> None:
        self._queue(key, self.config.set_aside_folder)

    def flush(self) -> None:
        """Make the queued moves: for each folder, in the order first asked
        for, one search for the messages still there and one MOVE. A
        folder's moves leave the queue once made, so a connection lost
        midway goes on with what is left after reconnecting; a message
        moved just before the loss is then found gone and left alone."""
        while self._queued:
            folder = next(iter(self._queued.values()))
            keys = [k for k, f in self._queued.items() if f == folder]
            self._retrying(partial(self._move, keys, folder))
            for key in keys:
                del self._queued[key]

    def expire(self, folder: str, before: datetime) -> int:
        """Delete the messages of `folder` that arrived before `before`
        (UID SEARCH BEFORE: by internal date, to the day, which a MOVE
        keeps), by \\Deleted and UID EXPUNGE of those alone (a plain
        EXPUNGE on a server without UIDPLUS); how many. A folder that does
        not exist is not created. The inbox is selected again after."""
        day = before.astimezone(UTC).date()
        return self._retrying(partial(self._expire, folder, day))

    def _queue(self, key: str, folder: str) -> None:
        _split_key(key)  # a key that is not ours is refused now
        self._queued.pop(key, None)  # the last word on a message counts
        self._queued[key] = folder

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
            # Two restarts in a row, or a habit: do not go round in a tight
            # loop, but do not give up on IDLE for long either.
            pause = backoff(self._quick_drops - 1)
            log.warning("%s: the server ended IDLE at once %d times in a "
                        "row; trying again in %.0f s", self.where,
                        self._quick_drops, pause)
            self._waker.sleep(min(pause, deadline - time.monotonic()))

    def close(self) -> None:
        if self._queued:
            # The record says they were handled: the next poll moves them.
            log.info("%s: %d moves not made before closing", self.where,
                     len(self._queued))
            self._queued.clear()
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

    def _search(self) -> tuple[int, list[int], set[int]]:
        """The folder's UIDVALIDITY, its undeleted messages, and those of
        them larger than a fetch's share of FETCH_BYTES (most mail is
        far smaller: one search names them all, where asking each
        message its size would cost a FETCH per batch)."""
        # Selecting again brings news of the folder: new mail, and a
        # UIDVALIDITY that may have changed.
        self._note(self._imap.select_folder(self.config.folder))
        uids = sorted(int(uid) for uid in self._imap.search(["UNDELETED"]))
        large = {int(uid) for uid in self._imap.search(
            ["UNDELETED", "LARGER", _fetch_share()])} if uids else set()
        return self._uidvalidity, uids, large

    def _sizes(self, validity: int, uids: list[int], large: set[int]
               ) -> dict[int, int]:
        """The sizes of `uids`, asked of the server for those in `large`;
        the others are at most _fetch_share() bytes, and count as that. A
        large message that is gone has no size; nor has any, if the folder
        was renumbered since the search (see _fetch)."""
        if self._uidvalidity != validity:
            return {}
        asked = [uid for uid in uids if uid in large]
        found = self._imap.fetch(asked, ["RFC822.SIZE"]) if asked else {}
        sizes = dict.fromkeys((uid for uid in uids if uid not in large),
                              _fetch_share())
        sizes.update({uid: int(item[b"RFC822.SIZE"])
                      for uid, item in found.items()
                      if b"RFC822.SIZE" in item})
        return sizes

    def _fetch(self, validity: int, uids: list[int]
               ) -> dict[int, dict[bytes, Any]]:
        """The messages `uids` name, whole; none if the folder was
        renumbered since the search (a reconnection can find it so): the
        UIDs may name other messages now, of any size."""
        if self._uidvalidity != validity:
            return {}
        found: dict[int, dict[bytes, Any]] = self._imap.fetch(
            uids, ["BODY.PEEK[]"])
        return found

    def _message_ids_of(self, validity: int, uids: list[int]
                        ) -> dict[int, str]:
        """The Message-ID of each message of `uids` still there (for a
        message too large to read: it is found again by it if the folder
        is renumbered before it is moved), read from its header alone."""
        if self._uidvalidity != validity:
            return {}
        ids: dict[int, str] = {}
        for uid, item in self._imap.fetch(
                uids, [f"BODY.PEEK[{_ID_FIELD}]"]).items():
            # Servers echo the part as asked, or in a case or quoting of
            # their own.
            head = next((value for name, value in item.items()
                         if name.upper().startswith(b"BODY[HEADER.FIELDS")),
                        None)
            if isinstance(head, bytes):
                ids[uid] = header_message_id(head)
        return ids

    def _news_since_fetch(self) -> bool:
        """Has mail arrived since the last search (before IDLE started)?"""
        if not self._uidnext:
            return False
        status = self._imap.folder_status(self.config.folder,
                                          [b"UIDNEXT", b"UIDVALIDITY"])
        return (int(status[b"UIDNEXT"]) != self._uidnext
                or int(status[b"UIDVALIDITY"]) != self._uidvalidity)

    def _move(self, keys: list[str], folder: str) -> None:
        # News first of messages that others expunged since this session
        # last heard, so that the search below no longer offers them.
        self._imap.noop()
        for last_try in (False, True):
            uids = sorted(self._current_uids(keys))
            if not uids:
                return
            self._ensure_folder(folder)
            try:
                self._move_uids(uids, folder)
            except IMAPClientError as exc:
                # One of them was expunged by someone else just now: the
                # server refuses the whole command. Look again, once.
                if last_try or "EXPUNGEISSUED" not in str(exc).upper():
                    raise
                log.info("%s: %s; looking again", self.where, exc)
                self._imap.noop()
                continue
            log.debug("%s: moved %d messages to %s", self.where, len(uids),
                      folder)
            return

    def _move_uids(self, uids: list[int], folder: str) -> None:
        move = self._imap.has_capability("MOVE")
        expunge = self._imap.has_capability("UIDPLUS")
        for chunk in uid_sets(uids):
            if move:
                self._imap.move(chunk, folder)
            else:
                # The copies exist before the originals are flagged, so a
                # failure at any point leaves each message in one place or
                # both.
                self._imap.copy(chunk, folder)
                self._imap.add_flags(chunk, [DELETED], silent=True)
                if expunge:
                    self._imap.uid_expunge(chunk)

    def _current_uids(self, keys: list[str]) -> list[int]:
        """The UIDs of the messages the keys name, as the folder is
        numbered now, leaving out (with a warning) those not there any
        more; in the keys' order, each once."""
        found: dict[int, None] = {}
        here: list[tuple[str, int]] = []
        for key in keys:
            validity, uid = _split_key(key)
            if validity == self._uidvalidity:
                here.append((key, uid))
                continue
            renumbered = self._renumbered_uid(key)
            if renumbered is not None:
                found[renumbered] = None
        if here:
            present = {int(u) for uids in uid_sets(sorted(
                {uid for _, uid in here})) for u in self._imap.search(
                    ["UID", uids, "UNDELETED"])}
            for key, uid in here:
                if uid in present:
                    found[uid] = None
                else:
                    log.warning("%s: no longer in %s; nothing to move",
                                key, self.config.folder)
        return list(found)

    def _renumbered_uid(self, key: str) -> int | None:
        """The UID now of a message fetched under another UIDVALIDITY,
        found by its Message-ID; None (with a warning) if that cannot be
        done safely."""
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

    def _expire(self, folder: str, day: date) -> int:
        if not self._imap.folder_exists(folder):
            return 0
        try:
            self._imap.select_folder(folder)
            uids = sorted(int(uid) for uid in self._imap.search(
                ["BEFORE", day, "UNDELETED"]))
            for chunk in uid_sets(uids):
                self._imap.add_flags(chunk, [DELETED], silent=True)
                if self._imap.has_capability("UIDPLUS"):
                    self._imap.uid_expunge(chunk)
                else:
                    self._imap.expunge()
        finally:
            # Every other step expects the inbox selected.
            with contextlib.suppress(IMAPClientError, *CONNECTION_ERRORS):
                self._note(self._imap.select_folder(self.config.folder))
        if uids:
            log.info("%s: removed %d messages from before %s from %r",
                     self.where, len(uids), day.isoformat(), folder)
        return len(uids)

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


def _fetch_share() -> int:
    """The most bytes a message may have to be fetched without its size
    looked at first: BATCH of them fill no more than FETCH_BYTES."""
    return min(FETCH_BYTES // BATCH, MAX_MESSAGE_BYTES)


def _next_fetch(uids: list[int], sizes: dict[int, int]
                ) -> tuple[list[tuple[int, int]], list[int]]:
    """The messages of the next FETCH, with their sizes (as _sizes gives
    them), and the UIDs after them: up to BATCH messages and FETCH_BYTES
    of them (at least one), those too large to read counting for nothing;
    a UID with no size was expunged since the search and is passed over."""
    batch: list[tuple[int, int]] = []
    total = taken = 0
    for uid in uids[:BATCH]:
        size = sizes.get(uid)
        if size is not None and size <= MAX_MESSAGE_BYTES:
            if batch and total + size > FETCH_BYTES:
                break
            total += size
        taken += 1
        if size is not None:
            batch.append((uid, size))
    return batch, uids[taken:]


def uid_set(uids: list[int]) -> str:
    """An IMAP sequence set for UIDs in ascending order, runs as ranges:
    [1, 2, 3, 7, 9, 10] -> "1:3,7,9:10"."""
    return ",".join(_runs(uids))


def uid_sets(uids: list[int], limit: int = SET_CHARS) -> list[str]:
    """`uid_set(uids)` cut between runs into sets of at most `limit`
    characters (a run longer than that, impossible for real UIDs, alone)."""
    sets: list[str] = []
    parts: list[str] = []
    size = 0
    for run in _runs(uids):
        if parts and size + 1 + len(run) > limit:
            sets.append(",".join(parts))
            parts, size = [], 0
        size += len(run) + (1 if parts else 0)
        parts.append(run)
    if parts:
        sets.append(",".join(parts))
    return sets


def _runs(uids: list[int]) -> Iterator[str]:
    start = end = None
    for uid in uids:
        if end is not None and uid == end + 1:
            end = uid
            continue
        if start is not None:
            yield f"{start}:{end}" if end != start else str(start)
        start = end = uid
    if start is not None:
        yield f"{start}:{end}" if end != start else str(start)


def renumbered(old_key: str, new_key: str) -> bool:
    """Whether two keys are IMAP keys of one folder under two numberings
    (UIDVALIDITY): a message found under both is one message, read again."""
    try:
        return _split_key(old_key)[0] != _split_key(new_key)[0]
    except ValueError:
        return False


def _split_key(key: str) -> tuple[int, int]:
    try:
        prefix, validity, uid = key.split(":")
        if prefix + ":" != PREFIX:
            raise ValueError
        return int(validity), int(uid)
    except ValueError:
        raise ValueError(f"{key!r} is not an IMAP key") from None
