"""How the record reaches the disk: a snapshot and a journal of changes.

TinyDB's own JSON storage rewrites the whole file on every change, so the
cost of handling one message would grow with the record. Here a commit
appends one line to a journal: the documents that changed, nothing more.
Now and then (when the journal outgrows the snapshot, and when a daemon
starts) the snapshot is rewritten from memory and the journal emptied.

Each commit and each snapshot carries a CRC-32 of its bytes, so that one
changed after it was written (a flipped bit that still reads as JSON)
stops start-up like any other damage; files written before there were
checksums are read without.

Crash safety:
- a commit is one line, fsynced; a torn last line (no newline: the crash
  came while it was written) is a commit that never happened, and is
  ignored (and cut off before the next append); a whole line that cannot
  be read is damage, and stops start-up, as does a snapshot missing or
  emptied beside its backups;
- the snapshot is replaced in one step (temporary file, fsync, rename); a
  crash before the journal is emptied only replays changes the new
  snapshot already holds, which changes nothing;
- the snapshot it replaces is kept as a backup (`<name>.1` to `.3`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from tinydb.storages import Storage

from mailbot.errors import MailbotError

log = logging.getLogger(__name__)

BACKUPS = 3
# The journal is folded into the snapshot once it is larger than this or
# than the snapshot, whichever is more: rare enough to cost little per
# message, often enough that start-up replays little.
MIN_JOURNAL_BYTES = 4 * 1024 * 1024

Change = tuple[str, str, dict[str, Any] | None]  # table, doc id, doc or gone


class DamagedRecordError(MailbotError):
    def __init__(self, path: Path, detail: str, advice: str = "") -> None:
        self.path = path
        super().__init__(f"{path} is damaged ({detail}); "
                         f"{advice or restore_advice(path)}")


def restore_advice(path: Path) -> str:
    """What to do when the snapshot itself cannot be used."""
    backup = last_good_backup(path)
    if backup is None:
        return "no good backup was found"
    return (f"the last good backup is {backup} (written {_mtime(backup)}): "
            f"copy it to {path.name} and move {journal_of(path).name} aside "
            "before starting mailbot; what was recorded after that time is "
            "then missing, and the mail it came from is in the mailbox's "
            "handled and set-aside folders")


def _mtime(path: Path) -> str:
    try:
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return "at an unknown time"
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _private(path: str, flags: int) -> int:
    """Open a file of the record readable by its owner only: it holds
    personal data (README, "Personal data")."""
    return os.open(path, flags, 0o600)


def journal_of(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def backup_of(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def last_good_backup(path: Path) -> Path | None:
    """The newest backup that reads as a record, if any."""
    for n in range(1, BACKUPS + 1):
        candidate = backup_of(path, n)
        try:
            if isinstance(_snapshot(_checked_text(candidate.read_bytes())),
                          dict):
                return candidate
        except (OSError, ValueError, RecursionError):
            continue
    return None


# A snapshot ends with its checksum, as the JSON object's last member: the
# CRC-32 of every byte before it (but the comma that joins it on).
CHECKSUM = "~crc32"
_SNAPSHOT_END = re.compile(rb'(,?)"~crc32":"([0-9a-f]{8})"\}\s*\Z')
# A journal line starts with its commit's checksum: "1a2b3c4d {...}".
_LINE_START = re.compile(rb"([0-9a-f]{8}) ")


def _checked_text(raw: bytes) -> str:
    """A snapshot's text, its checksum checked (ValueError if it does not
    match); one written without a checksum is taken as it is."""
    end = _SNAPSHOT_END.search(raw, max(0, len(raw) - 64))
    if end is not None:
        # Over a view: no copy of a record of hundreds of megabytes.
        _check(memoryview(raw)[:end.start()], end.group(2))
    return raw.decode("utf-8")


def _check(data: bytes | memoryview, checksum: bytes) -> None:
    if f"{zlib.crc32(data):08x}".encode() != checksum:
        raise ValueError("its checksum does not match: changed after it "
                         "was written")


def _snapshot(text: str) -> Any:
    """A snapshot's JSON, without its checksum member."""
    data = json.loads(text)
    if isinstance(data, dict):
        data.pop(CHECKSUM, None)
    return data


def _commit(line: bytes) -> Any:
    """A journal line's changes, its checksum checked (ValueError if it
    does not match); a line written without a checksum is read as is."""
    start = _LINE_START.match(line)
    if start is not None:
        line = line[start.end():]
        _check(line, start.group(1))
    return json.loads(line)["c"]


# Keys that are not text are written as text, as json does; a datetime
# or a dataclass is not JSON to json, which refuses it (a bug: the record
# holds times as text), and so here it goes on to json, which refuses it.
_AS_JSON_DOES = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                 | orjson.OPT_PASSTHROUGH_DATACLASS)


def _encoded(value: Any) -> bytes:
    """`value` as JSON in UTF-8, as json.dumps(value, ensure_ascii=False,
    separators=(",", ":")) writes it, by orjson: six times quicker on a
    record (measured), and every commit and snapshot writes JSON. Text
    holding lone surrogates (bytes that were not UTF-8, kept so by Python,
    as in a file name) has no UTF-8 form, and orjson refuses it, as it
    does an integer past 64 bits: json writes those, the text with \\u
    escapes, which read back the same. (orjson would write a float that
    is not finite as null, where json writes NaN; the record holds none:
    every number in it is read from digits.)"""
    try:
        return orjson.dumps(value, option=_AS_JSON_DOES)
    except TypeError:  # orjson.JSONEncodeError among them
        pass
    try:
        return json.dumps(value, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def _dump(data: dict[str, dict[str, Any]], out: BinaryIO) -> None:
    """What json.dump(data, out, separators=(",", ":")) writes, but in
    UTF-8, table by table, and ending with the checksum of what came before
    (CHECKSUM): json.dump runs the pure-Python encoder, several times
    slower than the one json.dumps uses, and a table is of bounded size
    (shards.py), so memory holds one table's text at a time."""
    crc = zlib.crc32(b"{")
    out.write(b"{")
    for n, (name, docs) in enumerate(data.items()):
        part = (b"," if n else b"") + _encoded(name) + b":" + _encoded(docs)
        crc = zlib.crc32(part, crc)
        out.write(part)
    out.write(b"," if data else b"")
    out.write(f'"{CHECKSUM}":"{crc:08x}"}}'.encode())


class JournalStorage(Storage):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.journal = journal_of(self.path)
        self._data: dict[str, dict[str, Any]] | None = None
        self._good_bytes = 0      # how much of the journal replayed cleanly
        self._journal_bytes = 0
        self._snapshot_bytes = 0
        self._compact_after = 0   # after a compaction the disk refused

    # -- what TinyDB calls ---------------------------------------------

    def read(self) -> dict[str, dict[str, Any]] | None:
        if self._data is None:
            self._data = self._load()
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        # TinyDB hands back the whole record after each change; it stays in
        # memory until the Store commits the documents it changed.
        self._data = data

    def close(self) -> None:
        pass

    # -- what the Store calls ------------------------------------------

    def put(self, table: str, doc_id: str, doc: dict[str, Any] | None
            ) -> None:
        """Set one document of one table in memory, or remove it (None).

        What TinyDB's own write path does, without rebuilding the whole
        table around it: the cost of a write stays that of one document.
        Like every change, it reaches the disk at the next `append`.
        """
        if self._data is None:
            self._data = self._load() or {}
        if doc is None:
            docs = self._data.get(table)
            if docs is not None:
                docs.pop(doc_id, None)
        else:
            self._data.setdefault(table, {})[doc_id] = doc

    def append(self, changes: Iterable[Change]) -> None:
        """Make a set of document changes durable, as one commit."""
        body = _encoded({"c": list(changes)})
        line = f"{zlib.crc32(body):08x} ".encode() + body + b"\n"
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.journal, "ab", opener=_private) as out:
            if out.tell() != self._good_bytes:
                # A torn commit from a crash: cut it off before appending.
                out.truncate(self._good_bytes)
                out.seek(self._good_bytes)
            out.write(line)
            out.flush()
            os.fdatasync(out.fileno())
        self._good_bytes += len(line)
        self._journal_bytes = self._good_bytes
        if self._journal_bytes > max(MIN_JOURNAL_BYTES, self._snapshot_bytes,
                                     self._compact_after):
            # The commit is on disk: a compaction the disk refuses must not
            # make it look failed (the caller would forget what the journal
            # holds). It is tried again once the journal has grown more.
            try:
                self.compact()
            except OSError as exc:
                self._compact_after = self._journal_bytes + MIN_JOURNAL_BYTES
                log.error("could not fold %s into %s (tried again later): %s",
                          self.journal.name, self.path.name, exc)

    def compact(self) -> None:
        """Write the whole record as the new snapshot and empty the journal,
        keeping the snapshot it replaces as a backup."""
        data = self.read() or {}
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Snapshots half-made by a compaction that a kill interrupted: the
        # whole record, which no erasure or backup rotation would reach.
        for stale in self.path.parent.glob(".mailbot-*.tmp"):
            with suppress(OSError):
                stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".mailbot-",
                                   suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                _dump(data, out)
                out.flush()
                os.fsync(out.fileno())
            self._rotate_backups()
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with open(self.journal, "wb", opener=_private) as out:
            # Empty from here, whatever fails next: the next append must
            # not pad it back to its old length.
            self._good_bytes = self._journal_bytes = self._compact_after = 0
            os.fchmod(out.fileno(), 0o600)  # one made by an older version
            os.fsync(out.fileno())
        self._snapshot_bytes = self.path.stat().st_size
        log.debug("record compacted into %s (%d bytes)", self.path,
                  self._snapshot_bytes)

    def discard(self) -> None:
        """Forget what is in memory: the next read loads the disk again."""
        self._data = None

    # -- loading -------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]] | None:
        data = self._load_snapshot()
        replayed = self._replay(data if data is not None else {})
        if data is None and replayed:
            data = replayed
        return data

    def _load_snapshot(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw: bytes | None = self.path.read_bytes()
        except FileNotFoundError:
            raw = None
        if raw is None or not raw.strip():
            # A record is new only until its first backup: a snapshot is
            # always replaced whole, so one gone or emptied since was lost.
            if self._has_backups():
                raise DamagedRecordError(
                    self.path, "missing" if raw is None else "empty")
            return None
        self._snapshot_bytes = len(raw)
        try:
            text = _checked_text(raw)
            del raw  # the text alone is held while it is parsed
            data = _snapshot(text)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError too
            raise DamagedRecordError(self.path, str(exc)) from exc
        if not isinstance(data, dict):
            raise DamagedRecordError(self.path, "not a JSON object")
        if not data and self._has_backups():
            raise DamagedRecordError(self.path, "holds no record")
        return data

    def _replay(self, data: dict[str, dict[str, Any]]
                ) -> dict[str, dict[str, Any]]:
        try:
            raw = self.journal.read_bytes()
        except FileNotFoundError:
            return data
        good = 0
        # At newlines alone (a JSON line holds no other line break, and a
        # stray CR from damage must not pass for the end of one). What
        # follows the last newline is a commit torn by a crash.
        *whole, torn = raw.split(b"\n")
        for number, line in enumerate(whole, 1):
            try:
                _apply(data, _commit(line))
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                # Whole, so not torn by a crash: written and then damaged.
                raise self.damaged_commit(number, good,
                                          f"cannot be read: {exc}") from exc
            good += len(line) + 1
        if torn:
            log.warning("%s: ignoring %d bytes of an unfinished commit",
                        self.journal, len(torn))
        self._good_bytes = good
        self._journal_bytes = len(raw)
        return data

    def damaged_commit(self, number: int, offset: int, detail: str
                       ) -> DamagedRecordError:
        """The error for journal commit `number` (at byte `offset`): the
        commits before it are a record as it once was."""
        return DamagedRecordError(
            self.journal, f"commit {number} {detail}",
            f"the {number - 1} commits before it can be kept by cutting the "
            f"journal there (truncate -s {offset} {self.journal}); what was "
            "recorded after them is then missing, and the mail it came from "
            "is in the mailbox's handled and set-aside folders")

    def last_commit_of(self, table: str, doc_id: str) -> tuple[int, int] | None:
        """The number and byte offset of the last journal commit that wrote
        a document, or None if the journal does not hold it (for saying
        where a document that makes no sense came from)."""
        try:
            raw = self.journal.read_bytes()
        except OSError:
            return None
        found, offset = None, 0
        for number, line in enumerate(raw.split(b"\n")[:-1], 1):
            try:
                changes = _commit(line)
            except (ValueError, KeyError, TypeError, RecursionError):
                break
            if any(c[:2] == [table, doc_id] for c in changes):
                found = (number, offset)
            offset += len(line) + 1
        return found

    def _has_backups(self) -> bool:
        return any(backup_of(self.path, n).exists()
                   for n in range(1, BACKUPS + 1))

    def _rotate_backups(self) -> None:
        if not self.path.exists():
            return
        oldest = backup_of(self.path, BACKUPS)
        oldest.unlink(missing_ok=True)
        for n in range(BACKUPS - 1, 0, -1):
            if backup_of(self.path, n).exists():
                os.replace(backup_of(self.path, n), backup_of(self.path, n + 1))
        # A hard link keeps the old snapshot whole under its backup name
        # while the new one takes its place: there is never a moment
        # without a snapshot at `path`.
        os.link(self.path, backup_of(self.path, 1))



def _apply(data: dict[str, dict[str, Any]], changes: Any) -> None:
    """Replay one commit's changes onto `data`; a commit of the wrong
    shape raises ValueError (before changing anything)."""
    if not isinstance(changes, list) or not all(
            isinstance(c, list) and len(c) == 3 and isinstance(c[0], str)
            and isinstance(c[1], str) and (c[2] is None or isinstance(c[2], dict))
            for c in changes):
        raise ValueError("not a list of changes")
    for table, doc_id, doc in changes:
        if doc is None:
            data.get(table, {}).pop(doc_id, None)
        else:
            data.setdefault(table, {})[doc_id] = doc
