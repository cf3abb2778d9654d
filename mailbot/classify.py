"""What a message from a person is about, and whose record it concerns.

The loop guard has already turned away robots. Here a message is matched
to the record (by the thread it answers, then by the sender's address) and
sorted into one of the kinds the workflow knows. Nothing is changed.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailbot import nomination
from mailbot.mail import Incoming
from mailbot.phrases import PhraseSet
from mailbot.quoting import new_text
from mailbot.store import INCOMPLETE, Store

NOMINATION = "nomination"
NOMINATION_REPLY = "nomination-reply"
COMMENT = "comment"
COMPLETION = "completion"
VISIT_REQUEST = "visit-request"
OTHER = "other"
FOREIGN_THREAD = "foreign-thread"


@dataclass(frozen=True)
class Understanding:
    kind: str
    cluster_id: int | None = None
    school_id: int | None = None
    reason: str = ""


class Classifier:
    def __init__(self, completion: PhraseSet, visit_request: PhraseSet) -> None:
        self.completion = completion
        self.visit_request = visit_request

    def classify(self, mail: Incoming, store: Store) -> Understanding:
        sender = mail.sender.email
        if "@" not in sender:
            return Understanding(OTHER, reason="no sender address to answer")
        thread = self._thread(mail, store)
        if thread.kind == FOREIGN_THREAD:
            return Understanding(OTHER, thread.cluster_id, None, thread.reason)

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
            return Understanding(OTHER, reason=thread.reason or
                                 "not from a school contact and not a nomination")

        cluster_id = store.school(school_id)["cluster_id"]
        words = f"{mail.subject}\n{new_text(mail.text)}"
        if self.visit_request.search(words):
            return Understanding(VISIT_REQUEST, cluster_id, school_id,
                                 "asks for a validation visit")
        if self.completion.search(words):
            return Understanding(COMPLETION, cluster_id, school_id,
                                 "says the self-review is complete")
        return Understanding(COMMENT, cluster_id, school_id, "from a school contact")

    def _thread(self, mail: Incoming, store: Store) -> Understanding:
        """The record a reply belongs to, from the Message-IDs it answers."""
        for ref in mail.thread_ids:
            sent = store.outgoing_by_message_id(ref)
            if sent is None:
                continue
            school_id = sent.get("school_id")
            # Only a school's own contact answers for the school. Anyone
            # else writing in that thread is not taken as the school, nor
            # as their own school either: a person should look.
            if school_id is not None:
                school = store.school(school_id)
                if school.get("contact_email") != mail.sender.email:
                    return Understanding(
                        FOREIGN_THREAD, sent.get("cluster_id"), school_id,
                        f"written in the thread of mail to {school['name']} "
                        "by someone who is not its contact")
            return Understanding(OTHER, sent.get("cluster_id"), school_id,
                                 f"answers {sent.get('kind')} {ref}")
        return Understanding(OTHER)

    def _school_of_sender(self, mail: Incoming, store: Store) -> int | None:
        schools = store.schools_with_contact(mail.sender.email)
        if len(schools) == 1:
            return schools[0].doc_id
        if not schools:
            return None
        # One contact for several schools: the one the mail names wins.
        words = f"{mail.subject}\n{mail.text}".lower()
        named = [s for s in schools if str(s["name"]).lower() in words]
        return named[0].doc_id if len(named) == 1 else None
