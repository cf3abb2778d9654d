"""How outgoing mail leaves: as .eml files in a folder, or over SMTP."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from typing import Protocol

from mailbot.config import SendingConfig

# How every message is written out. Headers are kept on one line up to RFC
# 5322's hard limit, and a header read back from the record is never
# refolded: refolding decodes encoded-words, and a decoded line break in a
# name must not become a header of its own.
WIRE_POLICY = SMTP.clone(max_line_length=998, refold_source="none")


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
