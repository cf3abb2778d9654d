"""Sending what the workflow queued, each message once.

A queued message is sent when its time has come, then marked sent and the
record committed at once, so that a crash can repeat at most the one
message that was in flight. Addresses known to bounce are left out; a
message with nobody left to send to is marked suppressed.
"""

from __future__ import annotations

import email
import email.utils
import logging
from datetime import timedelta

from mailbot.clock import Clock
from mailbot.errors import PermanentSendError, TransientSendError
from mailbot.senders import WIRE_POLICY, Sender
from mailbot.store import Store, stamp

log = logging.getLogger(__name__)


def retry_delay(attempts: int) -> timedelta:
    """Wait 1, 2, 4, ... minutes after each failure, at most an hour."""
    return timedelta(minutes=min(2 ** (attempts - 1), 60))


def deliver_pending(store: Store, sender: Sender, clock: Clock) -> int:
    """Send every queued message that is due; returns how many were sent."""
    sent = 0
    for item in store.pending_outgoing(clock.now()):
        now = clock.now()
        message = email.message_from_string(item["raw"], policy=WIRE_POLICY)
        to = [a for a in item["to"] if not store.is_undeliverable(a)]
        cc = [a for a in item["cc"] if not store.is_undeliverable(a)]
        if not to:
            store.update_outgoing(item.doc_id, {
                "status": "suppressed", "error": "every recipient bounces"})
            store.commit()
            log.info("suppressed %s %s to %s: address undeliverable",
                     item["kind"], item["message_id"], ", ".join(item["to"]))
            continue

        for header, kept in (("To", to), ("Cc", cc)):
            del message[header]
            if kept:
                message[header] = ", ".join(kept)
        del message["Date"]
        message["Date"] = email.utils.format_datetime(now)

        # The one window where a crash can repeat a message: after the
        # server has it and before the record says so. It is marked first,
        # so that a restart can say which message it may be sending twice.
        if item["status"] == "sending":
            log.warning("%s %s to %s was being sent when mailbot stopped; "
                        "sending it again, so it may arrive twice",
                        item["kind"], item["message_id"], ", ".join(to))
        else:
            store.update_outgoing(item.doc_id, {"status": "sending"})
            store.commit()
        try:
            sender.send(message)  # type: ignore[arg-type]
        except TransientSendError as exc:
            attempts = int(item.get("attempts", 0)) + 1
            retry = now + retry_delay(attempts)
            store.update_outgoing(item.doc_id, {
                "status": "pending", "attempts": attempts, "error": str(exc),
                "not_before": stamp(retry)})
            store.commit()
            log.warning("deferred %s %s (attempt %d, next at %s): %s",
                        item["kind"], item["message_id"], attempts,
                        stamp(retry), exc)
            if exc.server_down:
                break  # the rest would only fail the same way
            continue
        except PermanentSendError as exc:
            refused = exc.recipients
            for address in refused:
                store.mark_undeliverable(address, now, str(exc), item["message_id"])
            # Recipients the server accepted have the message: it counts
            # as sent unless every one of them was refused.
            status = "failed" if set(to + cc) <= set(refused) else "sent"
            store.update_outgoing(item.doc_id, {
                "status": status, "error": str(exc), "sent_at": stamp(now)})
            store.commit()
            log.error("refused %s %s: %s", item["kind"], item["message_id"], exc)
            continue

        store.update_outgoing(item.doc_id, {"status": "sent", "sent_at": stamp(now)})
        store.commit()
        sent += 1
        log.info("sent %s %s to %s", item["kind"], item["message_id"],
                 ", ".join(to + cc))
    return sent
