"""The processing order, written down once.

For each message in the inbox:

    1. skip it if the record says it was handled before (restart safety)
    2. parse it, once
    3. guard against loops: our own mail, bounces, auto-replies, bulk
    4. classify: which record, and what kind of message
    5. apply it to the record and queue replies
    6. record the outcome

and for each batch of up to BATCH messages, and at the end of the poll:

    7. commit the batch, in one write, and log one line per message
    8. then, and only then, move its messages to the handled or set-aside
       folder (the source may do that in bulk)

then send what is due. An error in any step sets the message aside with
the reason, undoing what that message alone changed (a savepoint is set
before each one); the poll goes on with the next message.

Why this is safe against a kill at any moment: a message leaves the inbox
only after the commit that records it, and the record says which keys
were handled. A kill before the commit loses the batch's effects with
the batch, whose messages are all still in the inbox and are handled
again; a kill after it leaves handled messages in the inbox, which the
next poll only moves. Outgoing mail is sent by deliver_pending, after
the commit, as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailbot import guard, mail, setaside
from mailbot.classify import Classifier
from mailbot.clock import Clock
from mailbot.commands import Commands, is_command_mail
from mailbot.delivery import deliver_pending
from mailbot.errors import SetAside
from mailbot.outcome import HANDLED, IGNORED, SET_ASIDE, Outcome
from mailbot.senders import Sender
from mailbot.sources import MailSource, RawMail
from mailbot.store import Store, stamp
from mailbot.sweep import sweep
from mailbot.workflow import Workflow

log = logging.getLogger(__name__)

# Messages committed together (one journal line) and then moved together.
BATCH = 200


@dataclass(frozen=True)
class _Handled:
    """A message handled in the batch, waiting for its commit to be moved
    and logged."""

    key: str
    outcome: Outcome
    message_id: str
    again: bool  # handled before: it is only moved


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
        # Handled since the last commit, in order: moved after it.
        self._batch: list[_Handled] = []

    def poll(self) -> int:
        """Handle every waiting message, then send; returns how many."""
        count = 0
        try:
            for raw in self.source.fetch():
                self._take(raw)
                count += 1
                if len(self._batch) >= BATCH:
                    self.settle()
            self.store.set_meta("last_poll", stamp(self.clock.now()))
        except Exception:
            # The mailbox went away mid-poll, say: what was handled is
            # kept and moved if it can be, then the poll fails as it would.
            if self._batch:
                try:
                    self.settle()
                except Exception:
                    log.exception("could not finish the messages handled "
                                  "so far")
            raise
        self.settle()
        deliver_pending(self.store, self.sender, self.clock)
        return count

    def sweep(self) -> None:
        sweep(self.flow, self.source)
        deliver_pending(self.store, self.sender, self.clock)

    def handle(self, raw: RawMail) -> None:
        """Handle one message whole: recorded, committed and moved."""
        self._take(raw)
        self.settle()

    def settle(self) -> None:
        """Commit the messages handled so far, log them, then move them.

        If the commit fails they are forgotten (the store undoes them);
        they are still in the inbox and come again at the next poll. If
        a move fails, the record says they were handled: the next poll
        moves them.
        """
        batch, self._batch = self._batch, []
        self.store.commit()
        for done in batch:
            if not done.again:
                outcome = done.outcome
                log.info("%s %s %s %s cluster=%s school=%s: %s",
                         outcome.outcome, done.message_id or "-", done.key,
                         outcome.kind, outcome.cluster_id, outcome.school_id,
                         outcome.summary)
        for done in batch:
            self._move(done.key, done.outcome.outcome)
        self.source.flush()

    def _take(self, raw: RawMail) -> None:
        """Handle one message into the open batch, not yet committed."""
        before = self.store.message_by_key(raw.key)
        if before is not None:
            # Handled, but the move did not happen before a stop: finish it.
            self._batch.append(_Handled(raw.key, Outcome(
                before["outcome"], before.get("kind", ""), ""), "", True))
            return

        self.store.savepoint()
        try:
            done = self._apply(raw)
        except BaseException:
            # Never half a message in a commit: without its record it would
            # be handled again after a restart.
            self.store.rollback_to_savepoint()
            raise
        self._batch.append(done)

    def _apply(self, raw: RawMail) -> _Handled:
        parsed: mail.Incoming | None = None
        try:
            parsed = mail.parse(raw.data)
            outcome = self._understand(parsed)
        except SetAside as exc:
            self.store.rollback_to_savepoint()
            outcome = Outcome(SET_ASIDE, "unreadable", exc.reason)
        except Exception as exc:  # one bad message must not stop the poll
            self.store.rollback_to_savepoint()
            log.exception("error handling %s", raw.key)
            outcome = Outcome(SET_ASIDE, "error",
                              f"error while handling: {type(exc).__name__}: {exc}")

        self._record(raw, parsed, outcome)
        if outcome.outcome == SET_ASIDE:  # a copy, to replay after a fix
            setaside.keep(self.store, raw)
        return _Handled(raw.key, outcome,
                        parsed.message_id if parsed else "", False)

    def _understand(self, parsed: mail.Incoming) -> Outcome:
        earlier = self.store.message_by_id(parsed.message_id)
        if earlier is not None:
            return Outcome(IGNORED, "duplicate",
                           f"same Message-ID as {earlier['key']}")
        verdict = guard.check(parsed, self.own)
        if verdict is not None:
            return self.flow.on_robot(parsed, verdict)
        if is_command_mail(parsed, self.flow.config.staff):
            return Commands(self.flow).handle(parsed)
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
