"""How outgoing mail leaves: as .eml files in a folder, or over SMTP."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

from mailbot.config import SendingConfig


class Sender(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Deliver one finished message to every To and Cc recipient.

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
