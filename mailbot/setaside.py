"""Mail set aside for a person: a copy of each message, to read and replay.

When the pipeline sets a message aside it keeps the message's bytes in
`set-aside/` next to the record, whatever the mailbox. Staff list what is
waiting, read one, and after a fix or a config change replay it: the same
bytes go through the same pipeline as if they had just arrived.

A message is named by its id: the first eight hex digits of a SHA-256 of
its mailbox key (the record's `key`). The key is unique to each handling,
so a message set aside again after a replay gets a new id, and no file
name is ever made from the text of a message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinydb.table import Document

from mailbot import mail
from mailbot.delivery import deliver_pending
from mailbot.errors import DISK_FULL, NotWaitingError, SetAside, TransientError
from mailbot.logsafe import printable
from mailbot.outcome import HOLDS, SET_ASIDE
from mailbot.sources import RawMail
from mailbot.store import Store, stamp

if TYPE_CHECKING:
    from mailbot.pipeline import Pipeline

log = logging.getLogger(__name__)

FOLDER = "set-aside"
ID_LENGTH = 8
REPLAYED = "replayed"

_HEX = re.compile("[0-9a-f]+")


def short_id(key: str) -> str:
    """The id staff type for the message recorded under `key`."""
    return _digest(key)[:ID_LENGTH]


def folder(store: Store) -> Path:
    return store.path.parent / FOLDER


def copy_path(store: Store, key: str) -> Path:
    """Where the copy of the message recorded under `key` is kept."""
    return folder(store) / f"{_digest(key)}.eml"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


# -- keep ----------------------------------------------------------------


def keep(store: Store, key: str, data: bytes) -> Path | None:
    """Keep a copy of a message being set aside, recorded under `key`;
    None if the disk refused. The store's next commit, which records the
    message, makes the copy durable first.

    A copy that cannot be written only means the message cannot be
    replayed: the original is still in the mailbox's set-aside folder.
    """
    target = copy_path(store, key)
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        if exc.errno in DISK_FULL:
            # For now: the message is undone and stays in the inbox, to be
            # set aside with its copy once there is room, not without one.
            raise TransientError(f"{key}: no room for its set-aside copy "
                                 f"in {target.parent}: {exc}") from exc
        log.error("%s: no copy kept for replay in %s: %s", key,
                  target.parent, exc)
        return None
    store.sync_with_commit(target)
    return target


# -- list and show -------------------------------------------------------


def waiting(store: Store) -> list[Document]:
    """The messages set aside and not yet replayed, oldest first."""
    return sorted(store.set_aside_messages(), key=lambda m: m.doc_id)


def listing(store: Store) -> str:
    """One line per waiting message: id, received, from, subject, reason."""
    entries = waiting(store)
    if not entries:
        return "No mail is set aside.\n"
    rows = [("ID", "RECEIVED (UTC)", "FROM", "SUBJECT", "REASON")]
    for entry in entries:
        reason = str(entry.get("reason") or "")
        if not copy_path(store, entry["key"]).exists():
            reason += " [no copy: cannot be replayed]"
        rows.append((short_id(entry["key"]), _when(entry.get("received_at")),
                     str(entry.get("from") or "-"),
                     _shorten(str(entry.get("subject") or "-"), 40), reason))
    # Every column but the last (the reason) padded to its widest cell.
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]))
    return printable("\n".join(lines)) + "\n"


def show(store: Store, set_aside_id: str) -> str:
    """The record of one message, then its headers and text as parsed."""
    entry = find(store, set_aside_id)
    lines = [f"id: {short_id(entry['key'])}"]
    lines += [f"{name}: {_field(value)}" for name, value in entry.items()]
    copy = copy_path(store, entry["key"])
    if not copy.exists():
        lines += ["", "No copy of this message was kept."]
        return printable("\n".join(lines)) + "\n"

    lines += [f"copy: {copy}", ""]
    try:
        parsed = mail.parse(copy.read_bytes())
    except SetAside as exc:
        lines.append(f"The message cannot be read: {exc.reason}")
        return printable("\n".join(lines)) + "\n"
    lines += _headers(parsed)
    lines += [f"attachment: {a.filename or '(no name)'} ({a.content_type}, "
              f"{len(a.data)} bytes)" for a in parsed.attachments]
    lines += ["", parsed.text.rstrip("\n")]
    return printable("\n".join(lines)) + "\n"


def find(store: Store, set_aside_id: str) -> Document:
    """The record of the message with this id, waiting or not."""
    wanted = set_aside_id.strip().lower()
    if len(wanted) != ID_LENGTH or not _HEX.fullmatch(wanted):
        raise NotWaitingError(repr(set_aside_id), "not an id: an id is the "
                              f"{ID_LENGTH} letters and digits that "
                              "`mailbot set-aside list` shows")
    found = [m for m in store.all_messages() if short_id(m["key"]) == wanted]
    if not found:
        raise NotWaitingError(set_aside_id, "no message has this id")
    if len(found) > 1:
        raise NotWaitingError(set_aside_id, "more than one message has this "
                              "id: " + ", ".join(m["key"] for m in found))
    return found[0]


def _headers(parsed: mail.Incoming) -> Iterator[str]:
    # Each name once, in the message's order, with its first value
    # decoded as the rest of mailbot sees it.
    for name in dict.fromkeys(parsed.message.keys()):
        yield f"{name}: {parsed.header(name)}"


def _when(value: Any) -> str:
    return str(value or "-")[:16].replace("T", " ")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _field(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


# -- replay --------------------------------------------------------------


class _NoMailbox:
    """The mailbox of a replayed message: it has none to fetch or move
    (the original stays in the mailbox's set-aside folder)."""

    def fetch(self) -> Iterator[RawMail]:
        return iter(())

    def mark_handled(self, key: str) -> None:
        pass

    def set_aside(self, key: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def wait(self, timeout: float) -> None:
        pass

    def interrupt(self) -> None:
        pass

    def expire(self, folder: str, before: datetime) -> int:
        return 0

    def close(self) -> None:
        pass


def replay(pipeline: Pipeline, set_aside_id: str) -> Document:
    """Handle a waiting message again, as if new; returns its new record.

    The caller holds the record's lock (`open_mailbot`). The message is
    handled with the workflow's `replaying` set: no Message-ID makes it a
    duplicate, and the hold it was set aside for (see `lifted`) does not
    hold it back again. The earlier record keeps
    its Message-ID only as `original_message_id` (the new record has it
    now) and ends marked "replayed" with the new outcome. Replies go out
    at once when they can, else at the daemon's next poll.
    """
    from mailbot.pipeline import Pipeline  # here: the pipeline imports us

    store, clock = pipeline.store, pipeline.clock
    entry = find(store, set_aside_id)
    old_id = short_id(entry["key"])
    if entry["outcome"] != SET_ASIDE:
        raise NotWaitingError(old_id, _not_waiting(entry))
    copy = copy_path(store, entry["key"])
    try:
        data = copy.read_bytes()
    except OSError as exc:
        raise NotWaitingError(old_id, f"no copy to replay ({exc}); the "
                              "original is in the mailbox's set-aside "
                              "folder") from exc

    # Committed before the pipeline runs: a message that fails is rolled
    # back to the last commit, and this record would then keep its
    # Message-ID and its place in the list beside the new one.
    tries = sum(1 for m in store.all_messages()
                if str(m["key"]).startswith(f"replay:{old_id}:"))
    key = f"replay:{old_id}:{tries + 1}"
    message_id = entry.get("original_message_id") or entry.get("message_id")
    store.update_message(entry.doc_id, {
        "message_id": "", "original_message_id": message_id or "",
        "replay_key": key})
    store.commit()

    again = Pipeline(store, _NoMailbox(), pipeline.sender, pipeline.flow,
                     pipeline.classifier, clock)
    pipeline.flow.replaying, pipeline.flow.lifted = True, lifted(entry)
    try:
        again.handle(RawMail(key, data))
    finally:
        pipeline.flow.replaying, pipeline.flow.lifted = False, frozenset()
    new = store.message_by_key(key)
    assert new is not None, f"the pipeline recorded nothing for {key}"

    store.update_message(entry.doc_id, {
        "outcome": REPLAYED, "replayed_at": stamp(clock.now()),
        "replay_outcome": new["outcome"], "replayed_as": short_id(key)})
    store.commit()
    log.info("replayed %s %s as %s: %s", old_id, message_id or "-", key,
             new["outcome"])

    try:
        deliver_pending(store, pipeline.sender, clock,
                        pipeline.flow.config.programme_people)
    except TransientError as exc:
        log.warning("replies wait for the daemon's next poll: %s", exc)
    return new


def lifted(entry: Document) -> frozenset[str]:
    """The holds (outcome.HOLDS) a replay of `entry` lifts: the one that
    set it aside, and those lifted by the replays it came from. Another
    hold still sets it aside, with its own reason, for staff to replay
    again if they mean that too. A record from before holds were named
    has no "hold": its replay lifts them all, as replays did then."""
    if "hold" not in entry:
        return HOLDS
    return frozenset(entry.get("lifted") or ()) | (
        {entry["hold"]} if entry["hold"] else set())


def replayed(old_id: str, new: Document) -> str:
    """What became of a replayed message, for the person who replayed it."""
    lines = [f"replayed {old_id}: {new['outcome']} ({new.get('reason')})"]
    if new["outcome"] == SET_ASIDE:
        lines.append(f"set aside again as {short_id(new['key'])}")
    return printable("\n".join(lines)) + "\n"


def _not_waiting(entry: Document) -> str:
    if entry["outcome"] == REPLAYED:
        return (f"already replayed at {entry.get('replayed_at')}, as "
                f"{entry.get('replayed_as')} ({entry.get('replay_outcome')})")
    return f"not waiting: it was {entry['outcome']} ({entry.get('reason')})"


# -- expiry and erasure ---------------------------------------------------


def kept_copies(store: Store) -> dict[str, Path]:
    """Every copy kept, by the digest its file is named after."""
    try:
        return {path.stem: path for path in folder(store).glob("*.eml")}
    except OSError:
        return {}


def copy_digest(key: str) -> str:
    """The name (without .eml) of the copy of the message under `key`."""
    return _digest(key)


def remove_stale(store: Store) -> int:
    """Remove the half-made copies (`*.tmp`) that a kill during `keep`
    left behind: whole or partial messages that no record names, so that
    neither expiry nor erasure would ever reach them. Safe only while no
    `keep` is in progress (keep runs in the thread that calls this)."""
    removed = 0
    try:
        stale = list(folder(store).glob("*.tmp"))
    except OSError:
        return 0
    for path in stale:
        with suppress(OSError):
            path.unlink()
            removed += 1
    if removed:
        log.info("removed %d half-written set-aside copies", removed)
    return removed


def remove_copy(path: Path) -> bool:
    """Remove one copy; False if it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def expire(store: Store, before: datetime) -> int:
    """Remove the copies of messages received before `before`, whether or
    not staff have replayed them (the digest listed each one when it was
    set aside, and the original stays in the mailbox's set-aside folder
    until the mailbox's own expiry). A copy with no record (its commit
    never happened) goes by the time its file was written. How many."""
    remove_stale(store)
    copies = kept_copies(store)
    if not copies:
        return 0
    cutoff = stamp(before)
    received = {_digest(m["key"]): str(m.get("received_at") or "")
                for m in store.all_messages()}
    removed = 0
    for digest, path in copies.items():
        if digest in received:
            old = received[digest] < cutoff
        else:
            try:
                old = path.stat().st_mtime < before.timestamp()
            except FileNotFoundError:
                continue
        if old and remove_copy(path):
            removed += 1
    if removed:
        log.info("removed %d set-aside copies of mail received before %s",
                 removed, cutoff)
    return removed
