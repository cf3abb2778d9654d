"""The processing order, written down once.

For each message in the inbox:

    1. skip it if the record says it was handled before (restart safety)
    2. parse it, once
    3. guard against loops: our own mail, bounces, auto-replies, bulk
    4. classify: which record, and what kind of message
    5. apply it to the record and queue replies
    6. record the outcome and commit, in one write
    7. move it to the handled or set-aside folder
    8. log one line

then send what is due. An error in any step sets the message aside with
the reason; the poll goes on with the next message.
"""

from __future__ import annotations

import logging

from mailbot import guard, mail, setaside
from mailbot.classify import Classifier
from mailbot.clock import Clock
from mailbot.delivery import deliver_pending
from mailbot.errors import SetAside
from mailbot.outcome import HANDLED, IGNORED, SET_ASIDE, Outcome
from mailbot.senders import Sender
from mailbot.sources import MailSource, RawMail
from mailbot.store import Store, stamp
from mailbot.sweep import sweep
from mailbot.workflow import Workflow

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, store: Store, source: MailSource, sender: Sender,
                 flow: Workflow, classifier: Classifier, clock: Clock) -> None:
        self.store = store
        self.source = source
        self.sender = sender
        self.flow = flow
        self.classifier = classifier
        self.clock = clock
        self.own = flow.config.own_addresses

    def poll(self) -> int:
        """Handle every waiting message, then send; returns how many."""
        count = 0
        for raw in self.source.fetch():
            self.handle(raw)
            count += 1
        self.store.set_meta("last_poll", stamp(self.clock.now()))
        self.store.commit()
        deliver_pending(self.store, self.sender, self.clock)
        return count

    def sweep(self) -> None:
        sweep(self.flow)
        deliver_pending(self.store, self.sender, self.clock)

    def handle(self, raw: RawMail) -> None:
        before = self.store.message_by_key(raw.key)
        if before is not None:
            # Handled, but the move did not happen before a stop: finish it.
            self._move(raw.key, before["outcome"])
            return

        parsed: mail.Incoming | None = None
        try:
            parsed = mail.parse(raw.data)
            outcome = self._understand(parsed)
        except SetAside as exc:
            self.store.rollback()
            outcome = Outcome(SET_ASIDE, "unreadable", exc.reason)
        except Exception as exc:  # one bad message must not stop the poll
            self.store.rollback()
            log.exception("error handling %s", raw.key)
            outcome = Outcome(SET_ASIDE, "error",
                              f"error while handling: {type(exc).__name__}: {exc}")

        self._record(raw, parsed, outcome)
        if outcome.outcome == SET_ASIDE:  # a copy, to replay after a fix
            setaside.keep(self.store, raw)
        self.store.commit()
        self._move(raw.key, outcome.outcome)
        log.info("%s %s %s %s cluster=%s school=%s: %s", outcome.outcome,
                 parsed.message_id if parsed else "-", raw.key, outcome.kind,
                 outcome.cluster_id, outcome.school_id, outcome.summary)

    def _understand(self, parsed: mail.Incoming) -> Outcome:
        earlier = self.store.message_by_id(parsed.message_id)
        if earlier is not None:
            return Outcome(IGNORED, "duplicate",
                           f"same Message-ID as {earlier['key']}")
        verdict = guard.check(parsed, self.own)
        if verdict is not None:
            return self.flow.on_robot(parsed, verdict)
        understood = self.classifier.classify(parsed, self.store)
        return self.flow.apply(parsed, understood)

    def _record(self, raw: RawMail, parsed: mail.Incoming | None,
                outcome: Outcome) -> None:
        self.store.record_message({
            "key": raw.key,
            "message_id": parsed.message_id if parsed else "",
            "from": parsed.sender.email if parsed else "",
            "subject": parsed.subject if parsed else "",
            "received_at": stamp(self.clock.now()),
            "outcome": outcome.outcome,
            "kind": outcome.kind,
            "reason": outcome.summary,
            "cluster_id": outcome.cluster_id,
            "school_id": outcome.school_id,
        })

    def _move(self, key: str, outcome: str) -> None:
        if outcome == SET_ASIDE:
            self.source.set_aside(key)
        elif outcome in (HANDLED, IGNORED):
            self.source.mark_handled(key)
