"""How outgoing mail leaves: as .eml files in a folder, or over SMTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mailbot.config import SendingConfig


@dataclass(frozen=True)
class Envelope:
    """One finished message and who it goes to.

    `data` is the message exactly as it travels (CRLF line ends), written
    by mailbot.compose; senders pass it on as it is and never parse it.
    `recipients` are the envelope recipients (RCPT TO), which need not be
    the addresses in its headers. `message_id` is its Message-ID.
    """

    data: bytes
    recipients: tuple[str, ...]
    message_id: str


class Sender(Protocol):
    def send(self, message: Envelope) -> None:
        """Deliver one finished message to each of its recipients.

        Raises TransientSendError when it may work later, and
        PermanentSendError when the server refused it for good.
        """
        ...

    def close(self) -> None:
        ...


def open_sender(config: SendingConfig, envelope_from: str) -> Sender:
    if config.kind == "file":
        from mailbot.senders.outbox import FileOutbox

        return FileOutbox(config)
    from mailbot.senders.smtp import SmtpSender

    return SmtpSender(config, envelope_from)
