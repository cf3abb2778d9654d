"""Enrolment: a nomination becomes a cluster, or a request for details.

A complete nomination records the cluster and its schools, acknowledges
and welcomes the lead contact, tells the council and Education Scotland,
and invites every school. An incomplete one is kept as a draft and the
sender is asked, in a form they can fill in, for exactly what is missing;
their reply is merged into the draft until it is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tinydb.table import Document

from mailbot import nomination
from mailbot.classify import NOMINATION, Understanding
from mailbot.compose import UK, Draft
from mailbot.mail import Incoming
from mailbot.nomination import Nomination, SchoolEntry
from mailbot.outcome import (
    CONTACT_TAKEN,
    HANDLED,
    NOMINATIONS_PER_DAY,
    SET_ASIDE,
    Outcome,
)
from mailbot.phrases import PhraseSet
from mailbot.store import ACTIVE, ALREADY_AWARDED, INCOMPLETE, INVITED, stamp
from mailbot.views import cluster_view, school_view, schools_view

if TYPE_CHECKING:
    from mailbot.workflow import Workflow

log = logging.getLogger(__name__)


class Enrolment:
    def __init__(self, flow: Workflow) -> None:
        self.flow = flow
        self.store = flow.store
        self.clock = flow.clock
        phrases = flow.rules.phrases
        self.awarded = PhraseSet(phrases.already_awarded, phrases.negations)

    def nomination(self, mail: Incoming, understood: Understanding) -> Outcome:
        parsed = nomination.parse_nomination(mail, self._is_awarded)
        if parsed.cluster_name and self._known_cluster(parsed.cluster_name):
            return Outcome(SET_ASIDE, NOMINATION,
                           f"a cluster named {parsed.cluster_name!r} "
                           "is already recorded")
        if too_many := self._too_many_schools(parsed):
            return too_many
        if too_many := self._too_many_nominations(parsed, mail):
            return too_many
        if taken := self._contacts_taken(parsed):
            return taken
        now = self.clock.now()
        cluster_id = self.store.add_cluster({
            "name": parsed.cluster_name,
            "local_authority": parsed.local_authority,
            "status": INCOMPLETE,
            "lead": {"name": parsed.lead_name, "email": parsed.lead_email},
            "validator": None,
            "created_at": stamp(now),
            "message_id": mail.message_id,
            "nominated_by": mail.sender.email,
            "draft": nomination_to_dict(parsed),
            "missing": parsed.missing(),
        })
        self.store.add_event(now, "nominated", cluster_id=cluster_id,
                             message_id=mail.message_id,
                             detail=f"{len(parsed.schools)} schools")
        return self._settle(cluster_id, parsed, mail)

    def reply(self, mail: Incoming, understood: Understanding) -> Outcome:
        assert understood.cluster_id is not None
        cluster = self.store.cluster(understood.cluster_id)
        update = nomination.parse_nomination(mail, self._is_awarded)
        before = nomination_from_dict(cluster["draft"])
        merged = nomination.merge(before, update)
        if too_many := self._too_many_schools(merged):
            return too_many
        # The reply may give a school's contact the nomination left out:
        # the same guard as a new nomination's, or a reply bypasses it.
        if taken := self._contacts_taken(merged):
            return taken
        if merged == before:
            # Nothing new: a thank-you, a question, or a robot. Asking
            # again would start a loop; a person should read it.
            return Outcome(SET_ASIDE, NOMINATION,
                           "a reply to our request for details that adds "
                           "none of them", cluster.doc_id)
        self.store.update_cluster(cluster.doc_id, {
            "name": merged.cluster_name,
            "local_authority": merged.local_authority,
            "lead": {"name": merged.lead_name, "email": merged.lead_email},
            "draft": nomination_to_dict(merged),
            "missing": merged.missing(),
        })
        self.store.add_event(self.clock.now(), "nomination-updated",
                             cluster_id=cluster.doc_id, message_id=mail.message_id)
        return self._settle(cluster.doc_id, merged, mail)

    def _settle(self, cluster_id: int, parsed: Nomination,
                mail: Incoming) -> Outcome:
        """Activate a complete nomination, or ask for what is missing."""
        if parsed.complete:
            self.activate(cluster_id, parsed, mail)
            return Outcome(HANDLED, NOMINATION,
                           f"cluster recorded with {len(parsed.schools)} schools",
                           cluster_id)
        missing = parsed.missing()
        self.flow.queue(Draft(
            key=f"missing-information:{cluster_id}:{mail.ref}",
            kind="missing-information", template="missing-information",
            to=(mail.sender.email,), reply_to_id=mail.message_id,
            references=mail.references, cluster_id=cluster_id,
            context={"sender_name": mail.sender.name or None, "missing": missing,
                     "form": _form(parsed), "understood": _understood(parsed)},
        ))
        return Outcome(HANDLED, NOMINATION,
                       "incomplete, asked for: " + "; ".join(missing), cluster_id)

    def activate(self, cluster_id: int, parsed: Nomination,
                  mail: Incoming) -> None:
        now = self.clock.now()
        council = parsed.local_authority
        start = self.flow.hours.next_working(now, council)
        deadline = self.flow.hours.deadline(start.astimezone(UK).date(),
                                            self.flow.rules.deadline_days,
                                            council)
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
                "reminders": [], "undeliverable": False,
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
        answering, references = self._lead_thread(cluster_id, mail)
        self.flow.queue(Draft(
            key=f"acknowledgment:{cluster_id}", kind="acknowledgment",
            template="acknowledgment", to=lead, reply_to_id=answering,
            references=references, cluster_id=cluster_id,
            context={**common, "lead_name": view["lead_name"],
                     "deadline_days": self.flow.rules.deadline_days}))
        self.flow.queue(Draft(
            key=f"welcome:{cluster_id}", kind="welcome", template="welcome",
            to=lead, cluster_id=cluster_id,
            context={**common, "lead_name": view["lead_name"],
                     "deadline": deadline}))
        self._notify_council(cluster_id, common, str(council))
        for school in self.store.schools_of(cluster_id):
            self._invite(school.doc_id, start, deadline)
        self.flow.assign_validator_if_ready(cluster_id)

    def _notify_council(self, cluster_id: int, common: dict[str, Any],
                        council: str) -> None:
        recipients = [("education-scotland", self.flow.config.education_scotland)]
        contact = self.flow.config.councils.get(council)
        if contact is None:
            log.warning("no contact configured for council %s: "
                        "cluster %s gets no council notice", council, cluster_id)
        else:
            recipients.insert(0, ("council", contact))
        for who, person in recipients:
            self.flow.queue(Draft(
                key=f"council-notice:{cluster_id}:{who}", kind="council-notice",
                template="council-notice", to=(person.email,),
                cluster_id=cluster_id,
                context={**common, "recipient_name": person.name,
                         "council": council}))

    def _invite(self, school_id: int, start: datetime, deadline: Any) -> None:
        school = self.store.school(school_id)
        cluster = self.store.cluster(school["cluster_id"])
        self.flow.queue(Draft(
            key=f"invitation:{school_id}", kind="invitation",
            template=invitation_template(school),
            to=(str(school["contact_email"]),), not_before=start,
            cluster_id=cluster.doc_id, school_id=school_id,
            context={"school": school_view(self.store, school),
                     "cluster": cluster_view(cluster), "deadline": deadline}))


    # -- helpers --------------------------------------------------------

    def _lead_thread(self, cluster_id: int, mail: Incoming
                     ) -> tuple[str, tuple[str, ...]]:
        """The message the lead's acknowledgment answers, and its
        References: `mail` when it is the nomination or a reply to our
        request for details (the nomination's own thread); else (staff
        confirming by command, a message the lead never saw) the lead's
        latest message in the nomination's thread, or failing that the
        nomination itself, whose id the cluster keeps."""
        cluster = self.store.cluster(cluster_id)
        lead = str((cluster.get("lead") or {}).get("email") or "").lower()
        nominated = str(cluster.get("message_id") or "")
        thread = [nominated] + [
            str(e["message_id"]) for e in self.store.history_of_cluster(cluster_id)
            if e.get("event") == "nomination-updated" and e.get("message_id")]
        if mail.sender.email.lower() == lead or mail.message_id in thread:
            return mail.message_id, mail.references
        if not nominated:
            return "", ()
        for at in range(len(thread) - 1, -1, -1):
            known = self.store.message_by_id(thread[at])
            if known is not None and str(known.get("from") or "").lower() == lead:
                return thread[at], tuple(dict.fromkeys(thread[:at]))
        return nominated, ()

    def _too_many_nominations(self, parsed: Nomination, mail: Incoming
                              ) -> Outcome | None:
        # Anyone may nominate, and every person named is written to: a run
        # of nominations from one sender, or naming the same people, is
        # more likely a robot or a prank than clusters; a person decides.
        if not self.flow.holds(NOMINATIONS_PER_DAY):
            return None  # staff, replaying it, have decided
        limit = self.flow.rules.nominations_per_sender_per_day
        since = stamp(self.clock.now() - timedelta(days=1))
        sender = mail.sender.email
        named = _people(parsed.lead_email,
                        (s.contact_email for s in parsed.schools))
        recent = [c for c in self.store.all_clusters()
                  if c.get("created_at", "") > since
                  and (c.get("nominated_by") == sender
                       or named & self._people_of(c))]
        if len(recent) < limit:
            return None
        return Outcome(SET_ASIDE, NOMINATION,
                       f"{len(recent)} clusters were nominated in the last 24 "
                       f"hours by {sender} or naming the same people, as many "
                       "as rules/programme.toml allows ([nomination] "
                       f"per_sender_per_day = {limit}); replay it to go ahead",
                       hold=NOMINATIONS_PER_DAY)

    def _contacts_taken(self, parsed: Nomination) -> Outcome | None:
        """A nomination naming as a school's contact the contact of a school
        already in the programme is for a person to decide: as a school of
        two clusters, that contact's mail could no longer be told apart,
        and anyone may send a nomination."""
        if not self.flow.holds(CONTACT_TAKEN):
            return None  # staff, replaying it, have decided
        taken = [(entry.contact_email, school)
                 for entry in parsed.schools if entry.contact_email
                 for school in self.store.schools_with_contact(
                     entry.contact_email.lower())]
        if not taken:
            return None
        names = {c.doc_id: c.get("name") for c in self.store.all_clusters()}
        said = "; ".join(f"{address} is already the contact of "
                         f"{school['name']} ({names.get(school['cluster_id'])})"
                         for address, school in taken[:5])
        return Outcome(SET_ASIDE, NOMINATION,
                       f"names a contact of a school already in the "
                       f"programme ({said}); replay it to go ahead",
                       hold=CONTACT_TAKEN)

    def _people_of(self, cluster: Document) -> set[str]:
        """The lead and school contacts a cluster names, recorded or (while
        it waits for details) in its draft."""
        schools = [s.get("contact_email")
                   for s in self.store.schools_of(cluster.doc_id)]
        drafted = [s.get("contact_email")
                   for s in (cluster.get("draft") or {}).get("schools", [])]
        return _people((cluster.get("lead") or {}).get("email"),
                       (*schools, *drafted))

    def _too_many_schools(self, parsed: Nomination) -> Outcome | None:
        # Inviting hundreds of schools on the word of one email is for a
        # person to decide: it is more likely a mistake than a cluster.
        limit = self.flow.rules.max_schools
        if len(parsed.schools) <= limit:
            return None
        return Outcome(SET_ASIDE, NOMINATION,
                       f"lists {len(parsed.schools)} schools, more than the "
                       f"{limit} a cluster may have (rules: max_schools)")

    def _is_awarded(self, text: str) -> bool:
        return self.awarded.search(text) is not None

    def _known_cluster(self, name: str) -> bool:
        return any(c["status"] != INCOMPLETE for c in self.store.clusters_named(name))




def _people(lead: str | None, contacts: Iterable[str | None]) -> set[str]:
    return {a.lower() for a in (lead, *contacts) if a}


def nomination_to_dict(parsed: Nomination) -> dict[str, Any]:
    return asdict(parsed)


def nomination_from_dict(data: dict[str, Any]) -> Nomination:
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
        ("Schools (one per line: name (primary or secondary) - contact name"
        " - email address):"),
    ]
    for n, school in enumerate(parsed.schools or (), start=1):
        phase = school.phase or blank
        lines.append(f"{n}. {school.name} ({phase}) - "
                     f"{school.contact_name or blank} - "
                     f"{school.contact_email or blank}")
    if not parsed.schools:
        lines.append(f"1. {blank} ({blank}) - {blank} - {blank}")
    return "\n".join(lines)


def invitation_template(school: Mapping[str, Any]) -> str:
    """Which invitation a school gets: awarded schools are invited to
    renew, secondaries and primaries each to their own self-review."""
    if school["status"] == ALREADY_AWARDED:
        return "invitation-awarded"
    if school.get("phase") == "secondary":
        return "invitation-secondary"
    return "invitation-primary"
