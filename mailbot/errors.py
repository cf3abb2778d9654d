"""The exceptions mailbot raises, arranged by what happens next.

    MailbotError
    ├── ConfigError          the configuration is wrong: stop and say where
    ├── StoreLockedError     another daemon holds the record: refuse to start
    ├── NotWaitingError      no set-aside message waits under that id: say so
    ├── SetAside             keep the message for staff, with a reason
    ├── TransientError       try again later (mail server down, timeout)
    │   └── TransientSendError
    └── PermanentError       give up on this item and tell staff
        └── PermanentSendError
"""

from __future__ import annotations

import errno
from collections.abc import Sequence


class MailbotError(Exception):
    """Base of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """A configuration or rules file is missing, malformed or inconsistent."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")


class StoreLockedError(MailbotError):
    """Another process already holds the record."""

    def __init__(self, lock_path: object, holder: str) -> None:
        self.lock_path = str(lock_path)
        super().__init__(
            f"{self.lock_path} is held by {holder}; "
            "is another mailbot already running on this data?"
        )


class NotWaitingError(MailbotError):
    """Staff named a set-aside message that is unknown or not waiting."""

    def __init__(self, set_aside_id: str, problem: str) -> None:
        self.set_aside_id = set_aside_id
        super().__init__(f"set-aside {set_aside_id}: {problem}")


class SetAside(MailbotError):
    """The message cannot be handled automatically; staff should see it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TransientError(MailbotError):
    """Something outside mailbot failed for now; the same step may work later."""


# A disk full, or a quota reached: for now, until there is room.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class PermanentError(MailbotError):
    """Something failed for good; retrying will not help."""


class TransientSendError(TransientError):
    """A message could not be sent this time (4xx, timeout, dropped link)."""

    def __init__(self, recipients: Sequence[str], detail: str,
                 server_down: bool = False, maybe_sent: bool = False) -> None:
        self.recipients = list(recipients)
        # True when no message can get through (no connection, login
        # refused), False when only this message or recipient must wait.
        self.server_down = server_down
        # True when the link was lost after the message was handed over,
        # before the server said it had it: sent again, it may arrive twice.
        self.maybe_sent = maybe_sent
        super().__init__(
            f"sending to {', '.join(recipients) or 'the server'} failed "
            f"for now: {detail}")


class PermanentSendError(PermanentError):
    """The server refused a message or a recipient for good (5xx)."""

    def __init__(self, recipients: Sequence[str], detail: str,
                 unknown: Sequence[str] | None = None) -> None:
        self.recipients = list(recipients)
        # Those refused for the address itself (no such mailbox), not for
        # a rule of the server's (relaying denied, a policy): all of them
        # unless the sender can tell.
        self.unknown = list(recipients if unknown is None else unknown)
        super().__init__(
            f"sending to {', '.join(recipients) or 'the server'} was "
            f"refused: {detail}")
