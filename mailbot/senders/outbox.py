"""Outgoing mail written as .eml files to a folder instead of being sent.

For the demo and for trying rules out: each message becomes one file named
"<UTC time>-<part of the Message-ID>.eml", so `ls` lists them in the order
they were written. Files appear whole or not at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from mailbot.config import SendingConfig
from mailbot.errors import TransientSendError
from mailbot.senders import Envelope

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_ID_CHARS = 40


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _id_part(message_id: str) -> str:
    """A file-name-safe token from a Message-ID, distinct for distinct ids.

    The Message-ID may come from anywhere: keep letters, digits, dot,
    dash and underscore, and add a short hash so that two ids that
    sanitise alike still give different names.
    """
    cleaned = _UNSAFE.sub("_", message_id.strip().strip("<>")).strip("._")
    digest = hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    return f"{cleaned[:_MAX_ID_CHARS]}-{digest[:8]}" if cleaned else digest[:8]


class FileOutbox:
    """A `Sender` that writes each message to `config.path` as .eml."""

    def __init__(self, config: SendingConfig) -> None:
        self.path = config.path
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Half-written files from a run that was killed mid-write.
        for stale in self.path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        # The Message-ID part of every name already here (after the time
        # stamp, before ".eml"), to check each send against in memory.
        self._written = {p.stem.split("-", 1)[1] for p in self.path.glob("*.eml")
                         if "-" in p.stem}

    def send(self, message: Envelope) -> None:
        try:
            self._write(message)
        except OSError as exc:
            raise TransientSendError([], f"cannot write to {self.path}: {exc}",
                                     server_down=True) from exc

    def _write(self, message: Envelope) -> None:
        part = _id_part(message.message_id)
        # Message-IDs are unique to each intended message, so one already
        # here was written before a crash that came before the record of
        # it: writing it again would send it twice.
        if message.message_id and part in self._written:
            log.warning("%s is already in the outbox; not written again",
                        message.message_id)
            return
        data = message.data
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{part}"

        # Written under a hidden name first, so that a reader globbing
        # *.eml never sees half a message.
        temp = self.path / f".{name}.tmp"
        # Readable by the owner only, like the record: it is personal data.
        with open(temp, "wb", opener=_private) as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        final = self._free_name(name)
        os.replace(temp, final)
        self._written.add(part)
        log.debug("wrote %s", final)

    def close(self) -> None:
        pass

    def _free_name(self, name: str) -> Path:
        # Only mailbot writes here, so checking first is enough to never
        # replace an earlier message with the same id and microsecond.
        final = self.path / f"{name}.eml"
        n = 1
        while final.exists():
            n += 1
            final = self.path / f"{name}-{n}.eml"
        return final
