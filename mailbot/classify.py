"""What a message from a person is about, and whose record it concerns.

The loop guard has already turned away robots. Here a message is matched
to the record (by the mail of ours it answers, then by the sender's
address) and sorted into one of the kinds the workflow knows. Nothing is
changed.

Anyone can write any From: line, so a school is named by a message only
with proof. The proof that it answers mail sent to a school is the
school's signed reference (mailbot/tokens.py) in its subject, its thread
ids or the plus address it was written to, or one of our own Message-IDs
in its thread. Such a message stands for the school when it comes from
an address that writes for the school (its contact, or one staff
accepted), or from another address at the school's own domain (one no
other school's contact is at). From the
contact of another school it is refused (ANOTHER_SCHOOL); from anyone
else it is for a person to read. Without such proof only the sender's
address names a school; a new address at a school's domain waits for
staff to accept it (NEW_ADDRESS).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from tinydb.table import Document

from mailbot import nomination, results
from mailbot.mail import Incoming
from mailbot.phrases import PhraseIndex, PhraseSet
from mailbot.quoting import new_text_of
from mailbot.store import INCOMPLETE, Store
from mailbot.tokens import Reference, Tokens

NOMINATION = "nomination"
NOMINATION_REPLY = "nomination-reply"
COMMENT = "comment"
COMPLETION = "completion"
VISIT_REQUEST = "visit-request"
# progress.py: a school or lead contact asking where they stand.
WHERE_WE_STAND = "where-we-stand"
OTHER = "other"
FOREIGN_THREAD = "foreign-thread"
# The contact of one school writing in the thread, or with the reference,
# of another: applied to neither, shown to staff.
ANOTHER_SCHOOL = "another-school"
# An address not yet known, at the domain of one school's contact: shown
# to staff, who may accept it for the school.
NEW_ADDRESS = "new-address"

# Domains where anyone may have an address: that a school's contact has
# one there says nothing about another address there. Glow is the
# national schools network, shared by every school in Scotland.
PUBLIC_DOMAINS = frozenset({
    "aol.com", "btinternet.com", "gmail.com", "glow.sch.uk", "gmx.co.uk",
    "gmx.com", "googlemail.com", "hotmail.co.uk", "hotmail.com",
    "icloud.com", "live.co.uk", "live.com", "mac.com", "mail.com", "me.com",
    "msn.com", "outlook.co.uk", "outlook.com", "proton.me",
    "protonmail.com", "sky.com", "talktalk.net", "virginmedia.com",
    "yahoo.co.uk", "yahoo.com", "ymail.com",
})

# Headers that may hold the plus address a message was written to.
_DELIVERY_HEADERS = ("delivered-to", "x-original-to")


@dataclass(frozen=True)
class Understanding:
    kind: str
    cluster_id: int | None = None
    school_id: int | None = None
    reason: str = ""


def references(mail: Incoming, tokens: Tokens) -> list[Reference]:
    """The valid signed references a message carries: in its subject, the
    ids of the thread it answers and the addresses it was written to."""
    texts = [mail.subject, *mail.thread_ids,
             *(a.email for a in (*mail.to, *mail.cc)),
             *(mail.header(name) for name in _DELIVERY_HEADERS)]
    return tokens.found([t for t in texts if t], mail.sender.email)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


class Classifier:
    def __init__(self, completion: PhraseSet, visit_request: PhraseSet,
                 tokens: Tokens | None = None,
                 people: Collection[str] = (),
                 where_we_stand: PhraseSet | None = None) -> None:
        # Without tokens only our own Message-IDs prove a reply.
        self.tokens = tokens
        # The programme's own people: never a school's new address.
        self.people = frozenset(people)
        # progress.py: "where do we stand?" (none: never matched).
        self.where_we_stand = where_we_stand or PhraseSet(())
        # What a school's mail may ask, all looked for in one pass.
        self._asks = PhraseIndex(
            [visit_request, completion, self.where_we_stand])

    def classify(self, mail: Incoming, store: Store) -> Understanding:
        sender = mail.sender.email
        if "@" not in sender:
            return Understanding(OTHER, reason="no sender address to answer")
        # results.py: a validator's answer about a school's visit.
        visit_reply = results.visit_reply_of(mail, store, self.people)
        if visit_reply is not None:
            return visit_reply
        thread = self._thread(mail, store)
        if thread.kind == FOREIGN_THREAD:
            return Understanding(OTHER, thread.cluster_id, None, thread.reason)
        if thread.kind == ANOTHER_SCHOOL:
            return thread

        # A reply to what we asked of an incomplete nomination, or more
        # mail from the lead of one, goes to that nomination.
        drafts = [c for c in store.clusters_led_by(sender)
                  if c.get("status") == INCOMPLETE]
        if thread.cluster_id is not None and thread.school_id is None:
            cluster = store.cluster(thread.cluster_id)
            if cluster.get("status") == INCOMPLETE:
                return Understanding(NOMINATION_REPLY, cluster.doc_id,
                                     reason="answers our request for details")
        if drafts and not thread.school_id:
            return Understanding(NOMINATION_REPLY, drafts[-1].doc_id,
                                 reason="from the lead of an incomplete nomination")
        # progress.py: a lead contact asking where the cluster stands.
        asking = self._lead_asking(mail, store, thread)
        if asking is not None:
            return asking
        if thread.cluster_id is not None and thread.school_id is None:
            # An answer to mail about the whole cluster (the acknowledgment,
            # the welcome): a correction or a question for a person.
            return Understanding(OTHER, thread.cluster_id,
                                 reason=f"a reply about the cluster: {thread.reason}")

        # Outside a school's thread, a nomination is a nomination even
        # from a school contact (a lead who also heads a school, sending
        # the list again or nominating another cluster).
        if thread.school_id is None and nomination.looks_like_nomination(mail):
            return Understanding(NOMINATION, reason="names a cluster and schools")
        school_id = thread.school_id or self._school_of_sender(mail, store)
        if school_id is None:
            return self._new_address(mail, store) or Understanding(
                OTHER, reason=thread.reason or self._no_school(sender, store))

        cluster_id = store.school(school_id)["cluster_id"]
        visit, complete, asks_where = self._asks.search(
            f"{mail.subject}\n{new_text_of(mail)}")
        if visit:
            return Understanding(VISIT_REQUEST, cluster_id, school_id,
                                 "asks for a validation visit")
        if complete:
            return Understanding(COMPLETION, cluster_id, school_id,
                                 "says the self-review is complete")
        # results.py: self-review results (a visit request or a completion
        # keeps any it carries too).
        if results.carries_results(mail):
            return Understanding(results.RESULTS, cluster_id, school_id,
                                 "carries self-review results")
        # progress.py: a question only; completion and visits come first.
        if asks_where:
            return Understanding(WHERE_WE_STAND, cluster_id, school_id,
                                 "asks where the school stands")
        return Understanding(COMMENT, cluster_id, school_id, "from a school contact")

    def _lead_asking(self, mail: Incoming, store: Store,
                     thread: Understanding) -> Understanding | None:
        """progress.py: the lead contact of an enrolled cluster, outside a
        school's thread, asking where the cluster stands."""
        if thread.school_id is not None:
            return None
        led = [c for c in store.clusters_led_by(mail.sender.email)
               if c.get("status") != INCOMPLETE]
        if not led or nomination.looks_like_nomination(mail):
            return None
        if not self.where_we_stand.search(
                f"{mail.subject}\n{new_text_of(mail)}"):
            return None
        chosen = next((c for c in led if c.doc_id == thread.cluster_id),
                      led[-1])
        return Understanding(WHERE_WE_STAND, chosen.doc_id, None,
                             "the lead contact asks where the cluster stands")

    def _thread(self, mail: Incoming, store: Store) -> Understanding:
        """The record a reply belongs to, from the mail of ours it answers
        (our Message-IDs in its thread, then the schools' references it
        carries), and whether its sender may speak for that school."""
        cluster_id: int | None = None
        school_id: int | None = None
        how = ""
        for ref in mail.thread_ids:
            sent = store.outgoing_by_message_id(ref)
            if sent is not None:
                cluster_id, school_id = sent.get("cluster_id"), sent.get("school_id")
                how = f"answers {sent.get('kind')} {ref}"
                break
        named = self._schools_referenced(mail, store)
        if not how and named:
            school = store.school(named[0])
            school_id, cluster_id = school.doc_id, school["cluster_id"]
            how = f"carries the reference of mail to {school['name']}"
        if not how:
            return Understanding(OTHER)

        others = [n for n in named if n != school_id]
        if others:
            names = ", ".join(str(store.school(n)["name"])
                              for n in [*([school_id] if school_id else []),
                                        *others])
            return Understanding(FOREIGN_THREAD, cluster_id, school_id,
                                 f"refers to mail sent to more than one "
                                 f"school or cluster ({names})")
        if school_id is None:
            return Understanding(OTHER, cluster_id, None, how)
        return self._speaks_for(mail, store, school_id, how)

    def _speaks_for(self, mail: Incoming, store: Store, school_id: int,
                    how: str) -> Understanding:
        """Whether the sender of a message proven to answer mail to a school
        may speak for it."""
        sender = mail.sender.email
        school = store.school(school_id)
        cluster_id = school["cluster_id"]
        if sender in store.addresses_of(school):
            return Understanding(OTHER, cluster_id, school_id, how)
        # Only a school's own people answer for the school. The contact of
        # another school is taken as neither school (a past bug marked the
        # sender's own school complete on the other's behalf).
        own = store.schools_accepting(sender)
        if own:
            return Understanding(
                ANOTHER_SCHOOL, cluster_id, school_id,
                f"{own[0]['name']}'s contact {sender} wrote about "
                f"{school['name']}: {how}; applied to neither")
        # A colleague at the school's own domain, answering the school's
        # mail (forwarded to them, say), writes for the school; not on a
        # domain other schools share (a council's), where many work.
        domain = domain_of(sender)
        if domain not in PUBLIC_DOMAINS and [
                s.doc_id for s in store.schools_at_domain(domain)] == [school_id]:
            return Understanding(OTHER, cluster_id, school_id,
                                 f"{how}, from an address at its domain")
        return Understanding(FOREIGN_THREAD, cluster_id, school_id,
                             f"written in the thread of mail to {school['name']} "
                             "by someone who is not its contact")

    def _schools_referenced(self, mail: Incoming, store: Store) -> list[int]:
        """The schools whose valid references the message carries, in
        order; a reference to a school no longer in the record is no
        reference."""
        if self.tokens is None:
            return []
        named = [r.school_id for r in references(mail, self.tokens)
                 if r.school_id is not None]
        return [n for n in named if store.schools.get(n) is not None]

    def _no_school(self, sender: str, store: Store) -> str:
        """Why mail from `sender`, in no school's thread, is no school's."""
        if sender in self.people:
            return "staff mail (or a validator's or council's) with no command in it"
        several = store.schools_accepting(sender)
        if several:
            return ("from the contact of several schools ("
                    + ", ".join(str(s["name"]) for s in several)
                    + "), naming none of them, or more than one")
        return "not from a school contact and not a nomination"

    def _school_of_sender(self, mail: Incoming, store: Store) -> int | None:
        schools = store.schools_accepting(mail.sender.email)
        if len(schools) == 1:
            return schools[0].doc_id
        if not schools:
            return None
        # One contact for several schools: the one the mail names wins.
        return _named(mail, schools)

    def _new_address(self, mail: Incoming, store: Store) -> Understanding | None:
        """A message from an address no school knows, at the domain of a
        school's contact: not the school's until staff accept it."""
        sender = mail.sender.email
        domain = domain_of(sender)
        if domain in PUBLIC_DOMAINS or sender in self.people \
                or store.clusters_led_by(sender):
            return None
        schools = store.schools_at_domain(domain)
        # A domain that several schools share (a council's) names one
        # only if the mail does.
        school_id = schools[0].doc_id if len(schools) == 1 \
            else _named(mail, schools)
        if school_id is None:
            return None
        school = store.school(school_id)
        return Understanding(
            NEW_ADDRESS, school["cluster_id"], school_id,
            f"new address at {school['name']}'s domain: {sender}; not "
            "applied unless staff accept it for the school")


def _named(mail: Incoming, schools: list[Document]) -> int | None:
    """The one school of `schools` that the mail names, if one."""
    words = f"{mail.subject}\n{mail.text}".lower()
    named = [s for s in schools if str(s["name"]).lower() in words]
    return named[0].doc_id if len(named) == 1 else None
