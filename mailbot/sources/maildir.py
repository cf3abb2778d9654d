"""Incoming mail from a local Maildir, with Maildir++ folders for the rest.

The inbox is `new/` and `cur/` of the Maildir itself; handled and set-aside
messages move to subfolders such as `.Handled/cur/` by an atomic rename, so
a mail client that reads the same Maildir sees them there. Nothing is
deleted but what `expire` removes once older than the privacy limit. A
move is made at once (`flush()` has nothing to do).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from mailbot.config import MailboxConfig
from mailbot.errors import ConfigError
from mailbot.mail import MAX_MESSAGE_BYTES, too_large
from mailbot.sources import RawMail
from mailbot.sources.waker import Waker

log = logging.getLogger(__name__)

PREFIX = "maildir:"
# How often a wait looks at new/ for a delivery.
WATCH_SECONDS = 1.0
# A file name in cur/ is "<unique name>:2,<flags>"; in new/ it has no info.
INFO_SEP = ":"
# Errors that reading a file again will not cure: the message is set
# aside unread. Any other (no file handles left, a disk error) fails the
# poll, and the next one reads the message again.
_NEVER_READABLE = frozenset({errno.EACCES, errno.EPERM, errno.EISDIR,
                             errno.ELOOP, errno.ENXIO, errno.EINVAL})


def _read_file(path: str) -> bytes:
    """The bytes of a regular file, never through a link (ELOOP), nor from
    a pipe or device (EINVAL, without waiting on it), put there since the
    file was listed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with open(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        return handle.read()


def unique_name(file_name: str) -> str:
    """A Maildir file name without its ":2,flags" info part."""
    return file_name.split(INFO_SEP, 1)[0]


def _folder_dir_name(name: str) -> str:
    """The Maildir++ directory for a folder: "Set aside" -> ".Set aside"."""
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise ValueError(f"{name!r} cannot name a Maildir folder")
    return "." + name


def _make_maildir(path: Path) -> None:
    # Mail holds personal data: a Maildir mailbot makes is its owner's
    # alone (one made by a mail server keeps the server's choice).
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(mode=0o700, exist_ok=True)


def _delivery_order(entry: os.DirEntry[str]) -> tuple[float, str]:
    # Unique names start with the delivery time in seconds (the Maildir
    # convention); fall back on the file's mtime for names that do not.
    head = entry.name.split(".", 1)[0]
    if head.isdigit():
        return float(head), entry.name
    try:
        return entry.stat().st_mtime, entry.name
    except FileNotFoundError:
        return 0.0, entry.name


class MaildirSource:
    """A `MailSource` over a Maildir on the local disk."""

    def __init__(self, config: MailboxConfig) -> None:
        self.root = config.path
        for key in ("handled_folder", "set_aside_folder"):
            try:
                _folder_dir_name(getattr(config, key))
            except ValueError as exc:
                raise ConfigError(config.path, f"mailbox.{key}",
                                  str(exc)) from exc
        self.handled_folder = config.handled_folder
        self.set_aside_folder = config.set_aside_folder
        _make_maildir(self.root)
        self._waker = Waker()
        self._seen = self._new_mtime()
        self._strays: set[str] = set()  # entries not files, warned about

    def fetch(self) -> Iterator[RawMail]:
        # Noted before reading, so that mail delivered during this poll
        # makes the next wait return at once.
        self._seen = self._new_mtime()
        yield from self._read(self.root)

    def wait(self, timeout: float) -> None:
        """Until a delivery changes new/ (looked at every second or so)."""
        deadline = time.monotonic() + timeout
        while self._new_mtime() == self._seen:
            left = deadline - time.monotonic()
            if left <= 0 or self._waker.sleep(min(left, WATCH_SECONDS)):
                return

    def interrupt(self) -> None:
        self._waker.wake()

    def mark_handled(self, key: str) -> None:
        self._move(key, self.root, self._folder(self.handled_folder))

    def set_aside(self, key: str) -> None:
        self._move(key, self.root, self._folder(self.set_aside_folder))

    def flush(self) -> None:
        """Nothing to do: a rename is made at once, and costs little."""

    def list_folder(self, folder: str) -> Iterator[RawMail]:
        """The messages in a subfolder such as "Set aside", oldest first."""
        path = self.root / _folder_dir_name(folder)
        if path.is_dir():
            yield from self._read(path)

    def restore(self, key: str, from_folder: str) -> None:
        """Move a message from a subfolder back into the inbox."""
        source = self.root / _folder_dir_name(from_folder)
        self._move(key, source, self.root)

    def expire(self, folder: str, before: datetime) -> int:
        """Delete the messages of a subfolder such as "Handled" that arrived
        before `before`: by the file's modification time, which a move
        keeps (Dovecot reads it as the time the message arrived). 0 if
        there is no such folder."""
        path = self.root / _folder_dir_name(folder)
        cutoff = before.timestamp()
        removed = 0
        for entry in self._entries(path):
            try:
                if entry.stat().st_mtime >= cutoff:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed += 1
        if removed:
            log.info("removed %d messages older than %s from %s", removed,
                     before.date().isoformat(), path)
        return removed

    def close(self) -> None:
        self._waker.close()

    def _new_mtime(self) -> int:
        # A delivery renames a file into new/, which changes its mtime.
        try:
            return (self.root / "new").stat().st_mtime_ns
        except OSError:
            return 0  # the next fetch says what is wrong

    def _folder(self, name: str) -> Path:
        path = self.root / _folder_dir_name(name)
        if not (path / "maildirfolder").exists():
            _make_maildir(path)
            # Maildir++ marks a folder with this empty file; Dovecot and
            # Courier expect it.
            (path / "maildirfolder").touch()
            log.info("created Maildir folder %s", path)
        return path

    def _entries(self, maildir: Path) -> list[os.DirEntry[str]]:
        entries: list[os.DirEntry[str]] = []
        for sub in ("new", "cur"):
            try:
                with os.scandir(maildir / sub) as found:
                    for entry in found:
                        if entry.name.startswith("."):
                            continue
                        if entry.is_file(follow_symlinks=False):
                            entries.append(entry)
                        elif entry.path not in self._strays:
                            # A folder, or a link (a delivery never makes
                            # one; followed, it could copy any file mailbot
                            # may read into set-aside/): no message, left
                            # where it is, said once.
                            self._strays.add(entry.path)
                            log.warning("%s is not a file: left as it is",
                                        entry.path)
            except FileNotFoundError:
                continue
        entries.sort(key=_delivery_order)
        return entries

    def _read(self, maildir: Path) -> Iterator[RawMail]:
        for entry in self._entries(maildir):
            key = PREFIX + unique_name(entry.name)
            size = None
            try:
                size = entry.stat(follow_symlinks=False).st_size
                if size > MAX_MESSAGE_BYTES:
                    yield RawMail(key, b"", too_large(size))
                    continue
                data = _read_file(entry.path)
            except FileNotFoundError:
                log.warning("%s vanished before it could be read", entry.path)
                continue
            except OSError as exc:
                if exc.errno not in _NEVER_READABLE:
                    raise  # for now (no file handles left, say): next poll
                # Only this message: the others behind it are still read.
                of = f" of {size:,} bytes" if size is not None else ""
                yield RawMail(key, b"", f"the file{of} cannot be read: "
                                        f"{exc.strerror or exc}")
                continue
            yield RawMail(key, data)

    def _find(self, maildir: Path, name: str) -> Path | None:
        """The file holding a unique name, in new/ or cur/."""
        candidate = maildir / "new" / name
        if candidate.exists():
            return candidate
        # In cur/ with its flags; or in new/ with an info part it should
        # not have there, but is read with all the same.
        for sub in ("cur", "new"):
            try:
                with os.scandir(maildir / sub) as found:
                    for entry in found:
                        if unique_name(entry.name) == name:
                            return Path(entry.path)
            except FileNotFoundError:
                pass
        return None

    def _move(self, key: str, source: Path, target: Path) -> None:
        name = self._name_from_key(key)
        found = self._find(source, name)
        if found is None:
            log.warning("%s: no longer in %s; nothing to move", key, source)
            return

        # A message from new/ enters cur/ with an empty info part; one
        # from cur/ keeps its flags.
        file_name = found.name if INFO_SEP in found.name else name + ":2,"
        destination = target / "cur" / file_name
        if destination.exists():
            # Never replace another message: a rename would overwrite it.
            base, sep, info = file_name.partition(INFO_SEP)
            n = 1
            while destination.exists():
                n += 1
                destination = target / "cur" / f"{base}.{n}{sep}{info}"

        try:
            os.rename(found, destination)
        except FileNotFoundError:
            log.warning("%s: vanished before it could be moved", key)
            return
        except OSError as exc:
            # The record says it was handled: the next poll moves it, and
            # the messages after it are moved meanwhile.
            log.error("%s: could not be moved to %s: %s", key, target, exc)
            return
        log.debug("%s: moved %s to %s", key, found, destination)

    @staticmethod
    def _name_from_key(key: str) -> str:
        if not key.startswith(PREFIX):
            raise ValueError(f"{key!r} is not a Maildir key")
        name = key[len(PREFIX):]
        # The key may come back from the store: keep it inside the Maildir.
        if not name or "/" in name or name.startswith(".") or "\0" in name:
            raise ValueError(f"{key!r} is not a Maildir key")
        return name
