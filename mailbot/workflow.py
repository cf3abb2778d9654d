"""What each kind of message does to the record, and the mail it queues.

Handlers change the record through the Store and queue mail as Drafts;
they never send anything themselves and never commit: the pipeline does
both once the whole message has been dealt with.
"""

from __future__ import annotations

import dataclasses
import email.utils
import logging
from datetime import datetime, timedelta
from typing import Any

from tinydb.table import Document

from mailbot import progress  # the 3-9 month goal
from mailbot.assign import choose_validator, open_clusters
from mailbot.classify import (
    ANOTHER_SCHOOL,
    COMMENT,
    COMPLETION,
    NEW_ADDRESS,
    NOMINATION,
    NOMINATION_REPLY,
    VISIT_REQUEST,
    Understanding,
)
from mailbot.clock import Clock
from mailbot.compose import Composer, Draft
from mailbot.config import Config
from mailbot.enrolment import Enrolment
from mailbot.guard import Verdict, is_robot_address
from mailbot.mail import Incoming, normalise_address
from mailbot.outcome import HANDLED, IGNORED, SET_ASIDE, Outcome
from mailbot.quoting import new_text_of
from mailbot.results import (  # self-review results, visits, awards
    RESULTS,
    VISIT_REPLY,
    comment_tags_of,
    on_results,
    on_visit_reply,
    receipt,
    take_results,
    visit_context,
    visit_gate,
)
from mailbot.rules import Rules
from mailbot.store import (
    ACTIVE,
    AWAITING_VALIDATOR,
    COMPLETE_STATUSES,
    INVITED,
    SELF_REVIEW_COMPLETE,
    VALIDATOR_ASSIGNED,
    VISIT_REQUESTED,
    Store,
    stamp,
)
from mailbot.supports import Supports  # the matrix of supports
from mailbot.tokens import Tokens
from mailbot.views import cluster_view, school_view, schools_view
from mailbot.workhours import WorkingTime

log = logging.getLogger(__name__)

# How much of a comment its receipt quotes back.
RECEIPT_QUOTE_CHARS = 2000


class Workflow:
    def __init__(self, config: Config, rules: Rules, store: Store,
                 composer: Composer, clock: Clock, hours: WorkingTime,
                 tokens: Tokens) -> None:
        self.config = config
        self.tokens = tokens
        self.rules = rules
        self.store = store
        self.composer = composer
        self.clock = clock
        self.hours = hours
        # Handling a message staff asked to replay (setaside.replay): its
        # Message-ID makes it no duplicate, and the holds staff lifted
        # (outcome.HOLDS: the one it was set aside for, and those lifted
        # by earlier replays of it) do not hold it again.
        self.replaying = False
        self.lifted: frozenset[str] = frozenset()
        self.enrolment = Enrolment(self)

    # -- the queue ------------------------------------------------------

    def queue(self, draft: Draft) -> bool:
        """Render and queue a draft; False if its key was queued before,
        or if it answers someone who has had too many answers today."""
        if self.store.outgoing_by_key(draft.key) is not None:
            return False
        now = self.clock.now()
        draft = self._people_only(draft)
        if not draft.to:
            return False
        if draft.reply_to_id and not draft.exempt_from_reply_limit \
                and self._reply_limit_reached(draft, now):
            return False
        message = self.composer.build(draft, now)
        return self.store.queue_outgoing({
            "key": draft.key,
            "kind": draft.kind,
            "to": list(draft.to),
            "cc": list(draft.cc),
            "subject": message.subject,
            "message_id": message.message_id,
            "status": "pending",
            "not_before": stamp(draft.not_before or now),
            "created_at": stamp(now),
            "cluster_id": draft.cluster_id,
            "school_id": draft.school_id,
            "raw": message.raw,
            "in_reply_to": draft.reply_to_id,
            "reference": message.reference,
        })

    def _people_only(self, draft: Draft) -> Draft:
        """The draft without recipients that no person reads: robots, and
        the programme's own address (a nomination may name either)."""
        def person(address: str) -> bool:
            return bool(address) and not is_robot_address(address) \
                and address not in self.config.own_addresses

        to = tuple(a for a in draft.to if person(a))
        cc = tuple(a for a in draft.cc if person(a))
        if (to, cc) == (draft.to, draft.cc):
            # Nobody dropped (nearly always): the draft as it is, equal to
            # the copy dataclasses.replace would make (measured: 3.4
            # microseconds a draft).
            return draft
        dropped = set(draft.to + draft.cc) - set(to + cc)
        log.warning("%s %s: not sending to %s", draft.kind, draft.key,
                    ", ".join(sorted(a or "(no address)" for a in dropped)))
        return dataclasses.replace(draft, to=to, cc=cc)

    def _reply_limit_reached(self, draft: Draft, now: datetime) -> bool:
        # Whatever a robot's headers say, it cannot keep a conversation
        # with mailbot going: answers to one address are capped per day.
        limit = self.rules.replies_per_address_per_day
        since = stamp(now - timedelta(days=1))
        for address in draft.to:
            if self.store.replies_to_since(address, since) >= limit:
                log.warning("not answering %s again today: %d automatic "
                            "replies in 24 hours", address, limit)
                self.store.add_event(now, "reply-limit",
                                     cluster_id=draft.cluster_id,
                                     school_id=draft.school_id,
                                     message_id=draft.reply_to_id,
                                     detail=address)
                return True
        return False

    # -- robots ---------------------------------------------------------

    def on_robot(self, mail: Incoming, verdict: Verdict) -> Outcome:
        now = self.clock.now()
        if verdict.kind == "bulk":
            return Outcome(SET_ASIDE, "bulk", f"not programme mail: {verdict.reason}")
        if verdict.kind == "bounce":
            if not verdict.bounced:
                return Outcome(SET_ASIDE, "bounce",
                               "a bounce whose failed address could not be read")
            for address in verdict.bounced:
                if address in self.config.programme_people:
                    # A bounce is easy to forge, and silencing the digest
                    # or a validator for good would do real harm: the
                    # config, not a bounce, says who the programme's
                    # people are.
                    log.error("a bounce names %s, one of the programme's "
                              "own people; not marking it undeliverable",
                              address)
                    continue
                self._undeliverable(address, now, verdict.reason, mail.message_id)
            return Outcome(HANDLED, "bounce",
                           "undeliverable: " + ", ".join(verdict.bounced))
        for school in self.store.schools_with_contact(mail.sender.email):
            self.store.add_event(now, verdict.kind, school_id=school.doc_id,
                                 cluster_id=school["cluster_id"],
                                 message_id=mail.message_id, detail=verdict.reason)
        return Outcome(IGNORED, verdict.kind, f"not answered ({verdict.reason})")

    def _undeliverable(self, address: str, now: datetime, reason: str,
                       message_id: str) -> None:
        self.store.mark_undeliverable(address, now, reason, message_id)
        for school in self.store.schools_with_contact(address):
            self.store.update_school(school.doc_id, {"undeliverable": True})
            self.store.add_event(now, "undeliverable", school_id=school.doc_id,
                                 cluster_id=school["cluster_id"],
                                 message_id=message_id, detail=address)

    def deliverable_again(self, address: str, message_id: str,
                          why: str) -> bool:
        """Lift an address's undeliverable mark, and its schools'; True
        if it had one."""
        now = self.clock.now()
        if not self.store.clear_undeliverable(address, now, why):
            return False
        for school in self.store.schools_with_contact(address):
            self.store.update_school(school.doc_id, {"undeliverable": False})
            self.store.add_event(now, "deliverable", school_id=school.doc_id,
                                 cluster_id=school["cluster_id"],
                                 message_id=message_id,
                                 detail=f"{address}: {why}")
        log.info("%s is no longer marked undeliverable: %s", address, why)
        return True

    # -- people ---------------------------------------------------------

    def apply(self, mail: Incoming, understood: Understanding) -> Outcome:
        handler = {
            NOMINATION: self.enrolment.nomination,
            NOMINATION_REPLY: self.enrolment.reply,
            COMMENT: self._comment,
            COMPLETION: self._completion,
            VISIT_REQUEST: self._visit_request,
            # results.py: self-review results, and a validator's answer
            # about a visit (its date or outcome).
            RESULTS: lambda m, u: on_results(self, m, u),
            VISIT_REPLY: lambda m, u: on_visit_reply(self, m, u),
            ANOTHER_SCHOOL: self._another_school,
            NEW_ADDRESS: self._new_address,
            # progress.py: "where do we stand?", answered with a checklist.
            progress.WHERE_WE_STAND:
                lambda m, u: progress.where_we_stand(self, m, u),
        }.get(understood.kind)
        if handler is None:
            return Outcome(SET_ASIDE, understood.kind,
                           f"not understood: {understood.reason}")
        # Someone writing from an address reads it: whatever bounce marked
        # it (a mailbox full then, or one forged to silence them) is past.
        # Not so a message replayed: it was written before, perhaps before
        # the bounce, and says nothing of the mailbox now.
        if not self.replaying:
            self.deliverable_again(mail.sender.email, mail.message_id,
                                   "mail came from it")
        return handler(mail, understood)

    def holds(self, hold: str) -> bool:
        """Whether the check `hold` (outcome.HOLDS) applies to the message
        being handled: not if staff lifted it by replaying the message."""
        return not (self.replaying and hold in self.lifted)

    # -- mail that would change a school's record without proof ----------

    def _another_school(self, mail: Incoming,
                        understood: Understanding) -> Outcome:
        """One school's contact wrote about another: the school written
        about keeps it in its history, and staff see it; neither changes."""
        self._note_for_staff(ANOTHER_SCHOOL, mail, understood)
        return Outcome(SET_ASIDE, ANOTHER_SCHOOL, understood.reason,
                       understood.cluster_id, None)

    def _new_address(self, mail: Incoming, understood: Understanding) -> Outcome:
        """A new address at a school's domain: kept for staff, who may
        accept it (`accept_contact`); the record does not change."""
        self._note_for_staff(NEW_ADDRESS, mail, understood)
        return Outcome(SET_ASIDE, NEW_ADDRESS, understood.reason,
                       understood.cluster_id, understood.school_id)

    def _note_for_staff(self, event: str, mail: Incoming,
                        understood: Understanding) -> None:
        """In the history of the school the mail concerns, for the digest:
        who wrote it."""
        assert understood.school_id is not None
        self.store.add_event(self.clock.now(), event,
                             school_id=understood.school_id,
                             cluster_id=understood.cluster_id,
                             message_id=mail.message_id,
                             detail=mail.sender.email)

    def accept_contact(self, school_id: int, address: str, by: str) -> str:
        """Take `address` as writing for the school from now on, besides its
        contact's, on the word of `by` (a member of staff); the school's
        history says so. Mail already set aside is not handled again here
        (`mailbot set-aside replay` does that). Returns what was done, in
        one line; raises KeyError for no such school and ValueError for
        what is not an address."""
        address = normalise_address(email.utils.parseaddr(address)[1])
        local, _, domain = address.rpartition("@")
        if not local or "." not in domain:
            raise ValueError(f"not an email address: {address!r}")
        school = self.store.school(school_id)
        if address in self.store.addresses_of(school):
            return f"{address} already writes for {school['name']}; nothing changed"
        contacts = [*school.get("contacts", []), address]
        self.store.update_school(school_id, {"contacts": contacts})
        self.store.add_event(self.clock.now(), "contact-accepted",
                             school_id=school_id,
                             cluster_id=school["cluster_id"],
                             detail=f"{address}, accepted by {by}")
        log.info("%s accepted as writing for %s (school %s) by %s", address,
                 school["name"], school_id, by)
        return (f"{address} accepted as a contact of {school['name']} "
                f"(school {school_id})")

    # -- a school's own mail ---------------------------------------------

    def _comment(self, mail: Incoming, understood: Understanding) -> Outcome:
        assert understood.school_id is not None
        text = new_text_of(mail).strip()
        if not text:
            return Outcome(SET_ASIDE, COMMENT,
                           "a reply with no new text", understood.cluster_id,
                           understood.school_id)
        school = self.store.school(understood.school_id)
        if not self.keep_comment(mail, school):
            return Outcome(IGNORED, COMMENT,
                           f"the same text as an earlier comment from "
                           f"{school['name']}", school["cluster_id"],
                           school.doc_id)
        # The receipt quotes enough to recognise the comment, never a
        # pasted log or a whole document (that stays in the record).
        self._reply(mail, school.doc_id, "comment-receipt", "comment-receipt",
                    {"comment": _excerpt(text, RECEIPT_QUOTE_CHARS)})
        return Outcome(HANDLED, COMMENT, f"comment stored for {school['name']}",
                       school["cluster_id"], school.doc_id)

    def keep_comment(self, mail: Incoming, school: Document) -> bool:
        """Keep the mail's new text as the school's comment, tagged by
        criterion, with a line in its history; False (nothing kept) if
        the school sent the same text before."""
        text = new_text_of(mail).strip()
        if self.store.has_comment(school.doc_id, text):
            return False
        now = self.clock.now()
        self.store.add_comment(school.doc_id, {
            "received_at": stamp(now), "text": text,
            "message_id": mail.message_id, "tags": comment_tags_of(mail)})
        self.store.add_event(now, "comment", school_id=school.doc_id,
                             cluster_id=school["cluster_id"],
                             message_id=mail.message_id, detail=text[:200])
        return True

    def _completion(self, mail: Incoming, understood: Understanding) -> Outcome:
        assert understood.school_id is not None
        now = self.clock.now()
        school = self.store.school(understood.school_id)
        if take_results(self, mail, school):  # results.py
            school = self.store.school(school.doc_id)
            receipt(self, mail, school)
        was = school["status"]
        if was == INVITED:
            self.store.update_school(school.doc_id, {
                "status": SELF_REVIEW_COMPLETE, "completed_at": stamp(now)})
        self.store.add_event(now, "self-review-complete", school_id=school.doc_id,
                             cluster_id=school["cluster_id"],
                             message_id=mail.message_id,
                             detail="" if was == INVITED else f"already {was}")
        # What the school says beside it of the criteria ("our coding club
        # is going well, but the laptops are slow") is kept as a comment
        # would be: the support plan draws on it.
        if comment_tags_of(mail):
            self.keep_comment(mail, school)
        remaining = sum(1 for s in self.store.schools_of(school["cluster_id"])
                        if s["status"] not in COMPLETE_STATUSES)
        self._reply(mail, school.doc_id, "completion-receipt",
                    "completion-receipt", {"remaining": remaining},
                    key=f"completion-receipt:{school.doc_id}")
        self.assign_validator_if_ready(school["cluster_id"])
        return Outcome(HANDLED, COMPLETION,
                       f"{school['name']} self-review complete",
                       school["cluster_id"], school.doc_id)

    def _visit_request(self, mail: Incoming, understood: Understanding) -> Outcome:
        assert understood.school_id is not None
        now = self.clock.now()
        school = self.store.school(understood.school_id)
        # results.py: the 70% rule; results the mail carries are kept.
        not_yet = visit_gate(self, mail, school)
        if not_yet is not None:
            return not_yet
        cluster = self.store.cluster(school["cluster_id"])
        self.store.update_school(school.doc_id, {
            "status": VISIT_REQUESTED, "visit_requested_at": stamp(now)})
        self.store.add_event(now, "visit-requested", school_id=school.doc_id,
                             cluster_id=cluster.doc_id,
                             message_id=mail.message_id)
        validator = cluster.get("validator")
        to = (validator["email"],) if validator else self.config.staff
        self.queue(Draft(
            key=f"visit-request:{mail.ref}", kind="visit-request",
            template="visit-request", to=tuple(to), cluster_id=cluster.doc_id,
            school_id=school.doc_id,
            # About the school, but to the validator: a reply is theirs.
            reference=self.tokens.for_person(to[0]),
            context={"recipient_name": validator["name"] if validator else None,
                     "school": school_view(self.store, school),
                     "cluster": cluster_view(cluster),
                     "contact_name": school.get("contact_name"),
                     "contact_email": school.get("contact_email"),
                     "request_text": new_text_of(mail).strip(),
                     "has_validator": bool(validator),
                     # results.py: the school's results and history.
                     **visit_context(self.store, school)}))
        self._reply(mail, school.doc_id, "acknowledgment", "visit-receipt",
                    {"validator": validator})
        told = validator["name"] if validator else "staff"
        return Outcome(HANDLED, VISIT_REQUEST,
                       f"visit requested by {school['name']}, {told} told",
                       cluster.doc_id, school.doc_id)

    def _reply(self, mail: Incoming, school_id: int, kind: str, template: str,
               extra: dict[str, Any], key: str = "") -> None:
        school = self.store.school(school_id)
        cluster = self.store.cluster(school["cluster_id"])
        self.queue(Draft(
            key=key or f"{template}:{mail.ref}", kind=kind,
            template=template, to=(mail.sender.email,),
            reply_to_id=mail.message_id, references=mail.references,
            cluster_id=cluster.doc_id, school_id=school_id,
            context={"school": school_view(self.store, school),
                     "cluster": cluster_view(cluster),
                     "contact_name": school.get("contact_name"), **extra}))

    # -- validators -----------------------------------------------------

    def assign_validator_if_ready(self, cluster_id: int) -> bool:
        """Give a finished cluster its validator, once; True if assigned now."""
        cluster = self.store.cluster(cluster_id)
        if cluster["status"] not in (ACTIVE, AWAITING_VALIDATOR):
            return False
        schools = self.store.schools_of(cluster_id)
        if not schools or any(s["status"] not in COMPLETE_STATUSES
                              for s in schools):
            return False
        now = self.clock.now()
        load = open_clusters(self.store.clusters_with_status(VALIDATOR_ASSIGNED))
        chosen = choose_validator(self.config.validators,
                                  str(cluster["local_authority"]), load)
        if chosen is None:
            if cluster["status"] != AWAITING_VALIDATOR:
                self.store.update_cluster(cluster_id, {"status": AWAITING_VALIDATOR,
                                                       "ready_at": stamp(now)})
                self.store.add_event(now, "awaiting-validator",
                                     cluster_id=cluster_id,
                                     detail="no validator free for this council")
            return False

        validator = {"name": chosen.name, "email": chosen.email}
        self.store.update_cluster(cluster_id, {
            "status": VALIDATOR_ASSIGNED, "validator": validator,
            "validator_assigned_at": stamp(now),
            "ready_at": cluster.get("ready_at") or stamp(now)})
        self.store.add_event(now, "validator-assigned", cluster_id=cluster_id,
                             detail=chosen.email)
        view = cluster_view(cluster)
        self.queue(Draft(
            key=f"validator-assignment:{cluster_id}", kind="validator-assignment",
            template="validator-assignment", to=(chosen.email,),
            cluster_id=cluster_id,
            context={"validator": validator, "cluster": view,
                     "schools": schools_view(self.store, cluster_id)}))
        self.queue(Draft(
            key=f"validator-introduction:{cluster_id}",
            kind="validator-assignment", template="validator-introduction",
            to=(str(cluster["lead"]["email"]),), cluster_id=cluster_id,
            context={"lead_name": view["lead_name"], "cluster": view,
                     "validator": validator}))
        # supports.py: the matrix of supports, proposed to the validator.
        Supports(self).propose(cluster_id)
        return True


def _excerpt(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(None, 1)[0]
    return f"{cut} [...]\n\n(The rest of your message is recorded as you sent it.)"
