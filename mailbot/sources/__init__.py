"""Where incoming mail is read from: a local Maildir or an IMAP server.

Every source hands out `RawMail` keyed by the mailbox's own identifiers and
moves a message out of the way once mailbot has dealt with it; nothing is
deleted but what `expire` removes from those folders once it is older than
the privacy limit. A source may hold moves back and make them together at
`flush()` (IMAP: one MOVE per folder for a whole batch); the pipeline
asks for a move only after the commit that records the message. Between
polls the daemon waits on the source, which returns early when new mail
may have arrived (IMAP IDLE, or a change to a Maildir's new/ folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailbot.config import MailboxConfig


@dataclass(frozen=True)
class RawMail:
    # The mailbox's own id: "maildir:<unique name>" or
    # "imap:<UIDVALIDITY>:<UID>". Stable across restarts.
    key: str
    data: bytes
    # Why the source did not read the message ("" if it did): it is set
    # aside for a person unread, and `data` is empty.
    unreadable: str = ""


class MailSource(Protocol):
    def fetch(self) -> Iterator[RawMail]:
        """Messages waiting in the inbox, oldest first."""
        ...

    def mark_handled(self, key: str) -> None:
        """Move a message to the handled folder (created if missing), at
        once or at the next `flush()`."""
        ...

    def set_aside(self, key: str) -> None:
        """Move a message to the set-aside folder (created if missing), at
        once or at the next `flush()`."""
        ...

    def flush(self) -> None:
        """Make every move asked for since the last flush. A message that
        is no longer in the inbox is left alone (with a warning). Raises
        TransientError if the mailbox cannot be reached; the moves not yet
        made are then kept for the next flush."""
        ...

    def wait(self, timeout: float) -> None:
        """Block until new mail may have arrived, `timeout` seconds have
        passed or `interrupt()` was called, whichever comes first. Never
        raises for a mailbox that cannot be reached: the next fetch says so.
        """
        ...

    def interrupt(self) -> None:
        """Cut a wait (or a pause before reconnecting) short, for a stop.

        Safe to call from a signal handler or another thread.
        """
        ...

    def expire(self, folder: str, before: datetime) -> int:
        """Delete the messages of a folder such as the handled folder that
        arrived before `before` (privacy.keep_raw_days); how many. A folder
        that does not exist holds nothing and is not created. The only
        deletion mailbot makes in a mailbox."""
        ...

    def close(self) -> None:
        ...


def open_source(config: MailboxConfig) -> MailSource:
    if config.kind == "maildir":
        from mailbot.sources.maildir import MaildirSource

        return MaildirSource(config)
    from mailbot.sources.imap import ImapSource

    return ImapSource(config)
