"""Sending what the workflow queued, each message once.

A queued message is sent when its time has come, then marked sent and the
record committed at once, so that a crash can repeat at most the one
message that was in flight. Addresses known to bounce are left out; a
message with nobody left to send to is marked suppressed.

The message is sent as the composer wrote it (mailbot.compose), never parsed
again: only its Date, and its To and Cc when an address was left out, are
rewritten, as text, in its header block.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from mailbot.clock import Clock
from mailbot.compose import address_field, date_field, replace_fields
from mailbot.errors import PermanentSendError, TransientSendError
from mailbot.senders import Envelope, Sender
from mailbot.store import Store, stamp

log = logging.getLogger(__name__)


def retry_delay(attempts: int) -> timedelta:
    """Wait 1, 2, 4, ... minutes after each failure, at most an hour."""
    return timedelta(minutes=min(2 ** (attempts - 1), 60))


def deliver_pending(store: Store, sender: Sender, clock: Clock,
                    people: frozenset[str]) -> int:
    """Send every queued message that is due; returns how many were sent.
    An address the server refuses for good is marked undeliverable, but
    never one of the programme's own `people`: the config, not a server's
    answer, says who they are (as with bounces)."""
    sent = 0
    for item in store.pending_outgoing(clock.now()):
        now = clock.now()
        to = [a for a in item["to"] if not store.is_undeliverable(a)]
        cc = [a for a in item["cc"] if not store.is_undeliverable(a)]
        if not to:
            store.update_outgoing(item.doc_id, {
                "status": "suppressed", "error": "every recipient bounces"})
            store.commit()
            log.info("suppressed %s %s to %s: address undeliverable",
                     item["kind"], item["message_id"], ", ".join(item["to"]))
            continue
        try:
            message = Envelope(data=_as_sent(item, to, cc, now).encode("utf-8"),
                               recipients=(*to, *cc),
                               message_id=item["message_id"])
        except ValueError as exc:
            # Only a record damaged by hand gets here: nothing to send.
            store.update_outgoing(item.doc_id, {
                "status": "failed", "error": f"cannot be sent: {exc}"})
            store.commit()
            log.error("cannot send %s %s: %s", item["kind"],
                      item["message_id"], exc)
            continue

        # The one window where a crash can repeat a message: after the
        # server has it and before the record says so. It is marked first,
        # so that a restart can say which message it may be sending twice.
        # Every send follows a commit that the disk took: a message whose
        # "sent" the disk refused is not sent again at each turn while it
        # refuses (it would go out once per poll until the disk has room).
        if item["status"] == "sending":
            store.update_outgoing(item.doc_id, {
                "resends": int(item.get("resends", 0)) + 1})
            store.commit()
            log.warning("%s %s to %s was being sent when mailbot stopped; "
                        "sending it again, so it may arrive twice",
                        item["kind"], item["message_id"], ", ".join(to))
        else:
            store.update_outgoing(item.doc_id, {"status": "sending"})
            store.commit()
        try:
            sender.send(message)
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
            if exc.maybe_sent:
                # The other window where a message may go twice: the link
                # was lost before the server said whether it took it.
                log.warning("%s %s to %s may have reached the server before "
                            "the connection was lost; sent again at %s, it "
                            "may arrive twice", item["kind"],
                            item["message_id"], ", ".join(to), stamp(retry))
            if exc.server_down:
                break  # the rest would only fail the same way
            continue
        except PermanentSendError as exc:
            refused = exc.recipients
            for address in exc.unknown:
                if address in people:
                    log.error("the server refused %s, one of the programme's "
                              "own people; not marking it undeliverable",
                              address)
                    continue
                store.mark_undeliverable(address, now, str(exc), item["message_id"])
            # Recipients the server accepted have the message: it counts
            # as sent unless every one of them was refused, or the message
            # itself was (no recipient named).
            status = "failed" if not refused or set(to + cc) <= set(refused) \
                else "sent"
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


def _as_sent(item: dict[str, Any], to: list[str], cc: list[str],
             now: datetime) -> str:
    """The queued message with today's Date, and with To and Cc rewritten
    if an address was left out; ValueError if there is no message."""
    raw = str(item.get("raw") or "")
    if not raw:
        raise ValueError("the queued message is empty")
    fields: dict[str, str | None] = {"Date": date_field(now)}
    if to != list(item["to"]) or cc != list(item["cc"]):
        fields["To"] = address_field("To", to)
        fields["Cc"] = address_field("Cc", cc) if cc else None
    return replace_fields(raw, fields)
