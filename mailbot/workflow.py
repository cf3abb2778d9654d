"""What each kind of message does to the record, and the mail it queues.

Handlers change the record through the Store and queue mail as Drafts;
they never send anything themselves and never commit: the pipeline does
both once the whole message has been dealt with.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from mailbot import nomination
from mailbot.classify import (COMMENT, COMPLETION, NOMINATION, NOMINATION_REPLY,
                              VISIT_REQUEST, Understanding)
from mailbot.clock import Clock
from mailbot.compose import UK, Composer, Draft
from mailbot.config import Config
from mailbot.guard import Verdict
from mailbot.mail import Incoming
from mailbot.nomination import Nomination, SchoolEntry
from mailbot.phrases import PhraseSet
from mailbot.quoting import new_text
from mailbot.rules import Rules
from mailbot.store import (ACTIVE, ALREADY_AWARDED, AWAITING_VALIDATOR,
                           COMPLETE_STATUSES, INCOMPLETE, INVITED,
                           SELF_REVIEW_COMPLETE, VALIDATOR_ASSIGNED,
                           VISIT_REQUESTED, Store, stamp)
from mailbot.views import cluster_view, school_view, schools_view
from mailbot.workhours import WorkingTime

log = logging.getLogger(__name__)

HANDLED = "handled"
IGNORED = "ignored"
SET_ASIDE = "set_aside"


@dataclass(frozen=True)
class Outcome:
    """What became of one message, for the log line and the record."""

    outcome: str
    kind: str
    summary: str
    cluster_id: int | None = None
    school_id: int | None = None


class Workflow:
    def __init__(self, config: Config, rules: Rules, store: Store,
                 composer: Composer, clock: Clock, hours: WorkingTime) -> None:
        self.config = config
        self.rules = rules
        self.store = store
        self.composer = composer
        self.clock = clock
        self.hours = hours
        self.awarded = PhraseSet(rules.phrases.already_awarded,
                                 rules.phrases.negations)

    # -- the queue ------------------------------------------------------

    def queue(self, draft: Draft) -> bool:
        """Render and queue a draft; False if its key was queued before."""
        if self.store.outgoing_by_key(draft.key) is not None:
            return False
        now = self.clock.now()
        message = self.composer.build(draft, now)
        return self.store.queue_outgoing({
            "key": draft.key,
            "kind": draft.kind,
            "to": list(draft.to),
            "cc": list(draft.cc),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "status": "pending",
            "not_before": stamp(draft.not_before or now),
            "created_at": stamp(now),
            "cluster_id": draft.cluster_id,
            "school_id": draft.school_id,
            "raw": message.as_string(),
        })

    # -- robots ---------------------------------------------------------

    def on_robot(self, mail: Incoming, verdict: Verdict) -> Outcome:
        now = self.clock.now()
        if verdict.kind == "bulk":
            return Outcome(SET_ASIDE, "bulk", f"not programme mail ({verdict.reason})")
        if verdict.kind == "bounce":
            if not verdict.bounced:
                return Outcome(SET_ASIDE, "bounce",
                               "a bounce whose failed address could not be read")
            for address in verdict.bounced:
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

    # -- people ---------------------------------------------------------

    def apply(self, mail: Incoming, understood: Understanding) -> Outcome:
        handler = {
            NOMINATION: self._nomination,
            NOMINATION_REPLY: self._nomination_reply,
            COMMENT: self._comment,
            COMPLETION: self._completion,
            VISIT_REQUEST: self._visit_request,
        }.get(understood.kind)
        if handler is None:
            return Outcome(SET_ASIDE, understood.kind,
                           f"not understood: {understood.reason}")
        return handler(mail, understood)

    def _nomination(self, mail: Incoming, understood: Understanding) -> Outcome:
        parsed = nomination.parse_nomination(mail, self._is_awarded)
        if parsed.cluster_name and self._known_cluster(parsed.cluster_name):
            return Outcome(SET_ASIDE, NOMINATION,
                           f"a cluster named {parsed.cluster_name!r} "
                           "is already recorded")
        now = self.clock.now()
        cluster_id = self.store.add_cluster({
            "name": parsed.cluster_name,
            "local_authority": parsed.local_authority,
            "status": INCOMPLETE,
            "lead": {"name": parsed.lead_name, "email": parsed.lead_email},
            "validator": None,
            "created_at": stamp(now),
            "message_id": mail.message_id,
            "draft": _nomination_to_dict(parsed),
            "missing": parsed.missing(),
        })
        self.store.add_event(now, "nominated", cluster_id=cluster_id,
                             message_id=mail.message_id,
                             detail=f"{len(parsed.schools)} schools")
        return self._settle(cluster_id, parsed, mail)

    def _nomination_reply(self, mail: Incoming,
                          understood: Understanding) -> Outcome:
        assert understood.cluster_id is not None
        cluster = self.store.cluster(understood.cluster_id)
        update = nomination.parse_nomination(mail, self._is_awarded)
        merged = nomination.merge(_nomination_from_dict(cluster["draft"]), update)
        self.store.update_cluster(cluster.doc_id, {
            "name": merged.cluster_name,
            "local_authority": merged.local_authority,
            "lead": {"name": merged.lead_name, "email": merged.lead_email},
            "draft": _nomination_to_dict(merged),
            "missing": merged.missing(),
        })
        self.store.add_event(self.clock.now(), "nomination-updated",
                             cluster_id=cluster.doc_id, message_id=mail.message_id)
        return self._settle(cluster.doc_id, merged, mail)

    def _settle(self, cluster_id: int, parsed: Nomination,
                mail: Incoming) -> Outcome:
        """Activate a complete nomination, or ask for what is missing."""
        if parsed.complete:
            self._activate(cluster_id, parsed, mail)
            return Outcome(HANDLED, NOMINATION,
                           f"cluster recorded with {len(parsed.schools)} schools",
                           cluster_id)
        missing = parsed.missing()
        self.queue(Draft(
            key=f"missing-information:{cluster_id}:{mail.message_id}",
            kind="missing-information", template="missing-information",
            to=(mail.sender.email,), reply_to_id=mail.message_id,
            references=mail.references, cluster_id=cluster_id,
            context={"sender_name": mail.sender.name or None, "missing": missing,
                     "form": _form(parsed), "understood": _understood(parsed)},
        ))
        return Outcome(HANDLED, NOMINATION,
                       "incomplete, asked for: " + "; ".join(missing), cluster_id)

    def _activate(self, cluster_id: int, parsed: Nomination,
                  mail: Incoming) -> None:
        now = self.clock.now()
        council = parsed.local_authority
        start = self.hours.next_working(now, council)
        deadline = start.astimezone(UK).date() + timedelta(
            days=self.rules.deadline_days)
        self.store.update_cluster(cluster_id, {
            "status": ACTIVE, "activated_at": stamp(now), "draft": None,
            "missing": []})
        for entry in parsed.schools:
            school_id = self.store.add_school({
                "cluster_id": cluster_id, "name": entry.name,
                "phase": entry.phase, "contact_name": entry.contact_name,
                "contact_email": entry.contact_email,
                "status": ALREADY_AWARDED if entry.already_awarded else INVITED,
                "invited_at": stamp(start), "deadline": deadline.isoformat(),
                "reminders": [], "comments": [], "undeliverable": False,
            })
            self.store.add_event(now, "recorded", school_id=school_id,
                                 cluster_id=cluster_id, message_id=mail.message_id,
                                 detail="already a Digital School"
                                 if entry.already_awarded else "")
        self.store.add_event(now, "activated", cluster_id=cluster_id,
                             message_id=mail.message_id)

        cluster = self.store.cluster(cluster_id)
        view, schools = cluster_view(cluster), schools_view(self.store, cluster_id)
        lead = (str(cluster["lead"]["email"]),)
        common = {"cluster": view, "schools": schools, "cluster_id": cluster_id}
        self.queue(Draft(
            key=f"acknowledgment:{cluster_id}", kind="acknowledgment",
            template="acknowledgment", to=lead, reply_to_id=mail.message_id,
            references=mail.references, cluster_id=cluster_id,
            context={**common, "lead_name": view["lead_name"],
                     "deadline_days": self.rules.deadline_days}))
        self.queue(Draft(
            key=f"welcome:{cluster_id}", kind="welcome", template="welcome",
            to=lead, cluster_id=cluster_id,
            context={**common, "lead_name": view["lead_name"],
                     "deadline": deadline}))
        self._notify_council(cluster_id, common, str(council))
        for school in self.store.schools_of(cluster_id):
            self._invite(school.doc_id, start, deadline)
        self.assign_validator_if_ready(cluster_id)

    def _notify_council(self, cluster_id: int, common: dict[str, Any],
                        council: str) -> None:
        recipients = [("education-scotland", self.config.education_scotland)]
        contact = self.config.councils.get(council)
        if contact is None:
            log.warning("no contact configured for council %s: "
                        "cluster %s gets no council notice", council, cluster_id)
        else:
            recipients.insert(0, ("council", contact))
        for who, person in recipients:
            self.queue(Draft(
                key=f"council-notice:{cluster_id}:{who}", kind="council-notice",
                template="council-notice", to=(person.email,),
                cluster_id=cluster_id,
                context={**common, "recipient_name": person.name,
                         "council": council}))

    def _invite(self, school_id: int, start: datetime, deadline: Any) -> None:
        school = self.store.school(school_id)
        cluster = self.store.cluster(school["cluster_id"])
        if school["status"] == ALREADY_AWARDED:
            template = "invitation-awarded"
        elif school.get("phase") == "secondary":
            template = "invitation-secondary"
        else:
            template = "invitation-primary"
        self.queue(Draft(
            key=f"invitation:{school_id}", kind="invitation", template=template,
            to=(str(school["contact_email"]),), not_before=start,
            cluster_id=cluster.doc_id, school_id=school_id,
            context={"school": school_view(school),
                     "cluster": cluster_view(cluster), "deadline": deadline}))

    def _comment(self, mail: Incoming, understood: Understanding) -> Outcome:
        assert understood.school_id is not None
        text = new_text(mail.text).strip()
        if not text:
            return Outcome(SET_ASIDE, COMMENT,
                           "a reply with no new text", understood.cluster_id,
                           understood.school_id)
        now = self.clock.now()
        school = self.store.school(understood.school_id)
        comments = [*school.get("comments", []), {
            "received_at": stamp(now), "text": text,
            "message_id": mail.message_id}]
        self.store.update_school(school.doc_id, {"comments": comments})
        self.store.add_event(now, "comment", school_id=school.doc_id,
                             cluster_id=school["cluster_id"],
                             message_id=mail.message_id, detail=text[:200])
        self._reply(mail, school.doc_id, "comment-receipt", "comment-receipt",
                    {"comment": text})
        return Outcome(HANDLED, COMMENT, f"comment stored for {school['name']}",
                       school["cluster_id"], school.doc_id)

    def _completion(self, mail: Incoming, understood: Understanding) -> Outcome:
        assert understood.school_id is not None
        now = self.clock.now()
        school = self.store.school(understood.school_id)
        was = school["status"]
        if was == INVITED:
            self.store.update_school(school.doc_id, {
                "status": SELF_REVIEW_COMPLETE, "completed_at": stamp(now)})
        self.store.add_event(now, "self-review-complete", school_id=school.doc_id,
                             cluster_id=school["cluster_id"],
                             message_id=mail.message_id,
                             detail="" if was == INVITED else f"already {was}")
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
        cluster = self.store.cluster(school["cluster_id"])
        self.store.update_school(school.doc_id, {
            "status": VISIT_REQUESTED, "visit_requested_at": stamp(now)})
        self.store.add_event(now, "visit-requested", school_id=school.doc_id,
                             cluster_id=cluster.doc_id,
                             message_id=mail.message_id)
        validator = cluster.get("validator")
        to = (validator["email"],) if validator else self.config.staff
        self.queue(Draft(
            key=f"visit-request:{mail.message_id}", kind="visit-request",
            template="visit-request", to=tuple(to), cluster_id=cluster.doc_id,
            school_id=school.doc_id,
            context={"recipient_name": validator["name"] if validator else None,
                     "school": school_view(school),
                     "cluster": cluster_view(cluster),
                     "contact_name": school.get("contact_name"),
                     "contact_email": school.get("contact_email"),
                     "request_text": new_text(mail.text).strip(),
                     "has_validator": bool(validator)}))
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
            key=key or f"{template}:{mail.message_id}", kind=kind,
            template=template, to=(mail.sender.email,),
            reply_to_id=mail.message_id, references=mail.references,
            cluster_id=cluster.doc_id, school_id=school_id,
            context={"school": school_view(school),
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
        chosen = self._choose_validator(str(cluster["local_authority"]))
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
        return True

    def _choose_validator(self, council: str) -> Any:
        """Fewest open clusters wins; ties go to the one listed first."""
        eligible = [v for v in self.config.validators
                    if council not in v.exclude_councils]
        if not eligible:
            return None
        open_count = {v.email: 0 for v in eligible}
        for cluster in self.store.all_clusters():
            validator = cluster.get("validator")
            if validator and cluster["status"] == VALIDATOR_ASSIGNED \
                    and validator["email"] in open_count:
                open_count[validator["email"]] += 1
        return min(eligible, key=lambda v: open_count[v.email])

    # -- helpers --------------------------------------------------------

    def _is_awarded(self, text: str) -> bool:
        return self.awarded.search(text) is not None

    def _known_cluster(self, name: str) -> bool:
        return any(c["status"] != INCOMPLETE for c in self.store.clusters_named(name))


def _nomination_to_dict(parsed: Nomination) -> dict[str, Any]:
    return asdict(parsed)


def _nomination_from_dict(data: dict[str, Any]) -> Nomination:
    schools = tuple(SchoolEntry(**s) for s in data.get("schools", []))
    return Nomination(**{**data, "schools": schools})


def _understood(parsed: Nomination) -> dict[str, Any]:
    return {"cluster_name": parsed.cluster_name,
            "local_authority": parsed.local_authority,
            "lead_name": parsed.lead_name, "lead_email": parsed.lead_email,
            "schools": [asdict(s) for s in parsed.schools]}


def _form(parsed: Nomination) -> str:
    """A plain-text form the sender can fill in and send back."""
    blank = "____"
    lead = ", ".join(x for x in (parsed.lead_name, parsed.lead_email) if x)
    lines = [
        f"Cluster name: {parsed.cluster_name or blank}",
        f"Local authority: {parsed.local_authority or blank}",
        f"Lead contact: {lead or blank}",
        "Schools (one per line: name (primary or secondary) - contact name"
        " - email address):",
    ]
    for n, school in enumerate(parsed.schools or (), start=1):
        phase = school.phase or blank
        lines.append(f"{n}. {school.name} ({phase}) - "
                     f"{school.contact_name or blank} - "
                     f"{school.contact_email or blank}")
    if not parsed.schools:
        lines.append(f"1. {blank} ({blank}) - {blank} - {blank}")
    return "\n".join(lines)
