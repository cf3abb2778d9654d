"""The matrix of supports by email (MISSION.md, step 3).

When a cluster gets its validator, `propose` builds the optimiser's input
(mailbot/matrix.py) from the record: each school's scores from its
self-review results (``school["self_review"]["criteria"]``), strength and
weakness tags on its comments, and the Digital Schools (awarded, or
awarded before the cluster began) in other clusters of the same council as
outside mentors. The proposal is kept on the cluster (``support_proposal``)
and sent to the validator as a table, with a CSV file of its ties and
fallbacks.

The validator's reply (`on_mail`, from the pipeline, before classifying)
accepts it ("accept", "agreed", "approved"), or changes it, by lines such
as "Kirkton mentors Glenbrae in School Culture", "remove Kirkton mentors
Glenbrae in School Culture", "council supports Glenbrae in School Culture",
or by the CSV sent back edited. A changed proposal is sent again to be
accepted, unless the same mail accepts it. Once accepted, each school gets
the part of the plan that concerns it, its cluster's lead copied.

A school without results has unknown scores: a gap in every criterion,
and the table says so. A Digital School without results counts as at the
threshold in every criterion: its status says it reached it.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tinydb.table import Document

from mailbot import matrix
from mailbot.compose import Draft, FileAttachment
from mailbot.mail import Incoming
from mailbot.outcome import HANDLED, SET_ASIDE, Outcome
from mailbot.quoting import new_text_of
from mailbot.results import tags_of
from mailbot.rules import MatrixRules
from mailbot.selfreview import criterion as criterion_of
from mailbot.store import ALREADY_AWARDED, AWARDED, stamp
from mailbot.views import cluster_view, school_view

log = logging.getLogger(__name__)

PROPOSAL_KIND = "support-proposal"
PLAN_KIND = "support-plan"
KINDS = frozenset({PROPOSAL_KIND, PLAN_KIND})
PROPOSED = "proposed"
ACCEPTED = "accepted"
DIGITAL = frozenset({AWARDED, ALREADY_AWARDED})
CSV_NAME = "matrix-of-supports.csv"
CSV_COLUMNS = ("criterion", "mentee_id", "mentee_school", "mentor_id",
               "mentor_school", "support")
MENTOR = "mentor"
SUPPORTS = {s.value.lower(): s.value for s in matrix.Support}
SHORT = {
    "Leadership & Vision": "Leadership",
    "Use of Digital Technology to Deliver the Curriculum": "Curriculum",
    "School Culture": "Culture",
    "Professional Development": "Prof. dev.",
    "Resources & Infrastructure": "Resources",
}
_ACCEPT = re.compile(r"\b(accept|accepted|agree|agreed|approve|approved)\b",
                     re.IGNORECASE)
# A negation before the verb in the same sentence ("won't accept", "I'm
# unable to agree", "I do not yet approve") makes it no acceptance; the
# mail is then set aside for a person, the safe side of a misreading.
# A single line break may fall inside the sentence (mail is wrapped at
# 72 columns: "I do not\naccept"); a blank line ends it.
_NEGATED = re.compile(r"(?:\bnot\b|n't\b|\bcannot\b|\bunable\b|\bnever\b|"
                      r"\brefuse\b)(?:[^.!?\n]|\n(?![ \t]*\n)){0,60}?"
                      r"\b(?:accept|agree|approve)", re.IGNORECASE)
_MENTORS = re.compile(r"^\s*(?:[-*•]\s*)?(?P<remove>remove\s+)?(?P<mentor>.+?)"
                      r"\s+(?:mentors|will mentor|to mentor)\s+(?P<mentee>.+?)"
                      r"\s+(?:in|for)\s+(?P<criterion>.+?)\s*[.;]?\s*$",
                      re.IGNORECASE)
_SUPPORTS = re.compile(r"^\s*(?:[-*•]\s*)?(?P<remove>remove\s+)?"
                       r"(?:the\s+)?(?P<support>validator|council|"
                       r"education scotland)(?:'s guidance)?\s+"
                       r"(?:supports|will support|to support|for)\s+"
                       r"(?P<mentee>.+?)\s+(?:in|for)\s+"
                       r"(?P<criterion>.+?)\s*[.;]?\s*$", re.IGNORECASE)


def settings(rules: MatrixRules) -> matrix.Settings:
    return matrix.Settings(
        strength_threshold=rules.strength_threshold,
        max_mentees=rules.max_mentees_per_criterion,
        validator_gaps=rules.validator_gaps,
        council_gaps=rules.council_gaps)


@functools.lru_cache(maxsize=1024)
def full_criterion(name: str) -> str | None:
    """The criterion's full name for any way of writing it, or None. Asked
    for every tag of every comment of a cluster's schools when its matrix
    is worked out, mostly of the same few names: the answers are kept."""
    for full in matrix.CRITERIA:
        if name.strip().lower() == full.lower():
            return full
    found = criterion_of(name)
    return found.full if found is not None else None


# -- the input ----------------------------------------------------------


def scores_of(school: Mapping[str, Any]) -> dict[str, float] | None:
    """A school's percentages by criterion from its self-review results,
    or None if it has none."""
    review = school.get("self_review")
    if not isinstance(review, Mapping):
        return None
    # results.py keeps {"percent": {"culture": 65.0, ...}}; the brief
    # spoke of {"criteria": {name: {"percent": ...}}}: either is read.
    criteria = review.get("percent")
    if not isinstance(criteria, Mapping):
        criteria = review.get("criteria")
    if not isinstance(criteria, Mapping):
        return None
    scores: dict[str, float] = {}
    for name, value in criteria.items():
        percent = value.get("percent") if isinstance(value, Mapping) else value
        full = full_criterion(str(name))
        if full is None or isinstance(percent, bool) \
                or not isinstance(percent, int | float) \
                or not 0 <= percent <= 100:
            continue
        scores[full] = float(percent)
    return scores or None


# A school's standing in a criterion is read from its latest comments
# only: a later one wins anyway, and a long history costs no more.
COMMENTS_READ = 10


def overrides_of(comments: Iterable[Mapping[str, Any]]
                 ) -> dict[str, matrix.Standing]:
    """Strengths and weaknesses the comments' tags name; a later comment
    wins over an earlier one."""
    found: dict[str, matrix.Standing] = {}
    for comment in comments:
        for tag in tags_of(comment):
            if isinstance(tag, Mapping):
                name, kind = tag.get("criterion"), tag.get("kind")
            elif isinstance(tag, list | tuple) and len(tag) >= 2:
                name, kind = tag[0], tag[1]
            else:
                continue
            full = full_criterion(str(name or ""))
            if full is None:
                continue
            if kind == "strength":
                found[full] = matrix.Standing.STRENGTH
            elif kind in ("weakness", "gap"):
                found[full] = matrix.Standing.GAP
    return found


@dataclass
class Input:
    cluster: list[matrix.School]
    outside: list[matrix.School]
    unknown: list[int]  # cluster schools without results
    names: dict[int, str]
    committed: dict[tuple[str, str], int] = field(default_factory=dict)


def build_input(store: Any, cluster_id: int, threshold: float) -> Input:
    cluster = store.cluster(cluster_id)
    council = str(cluster.get("local_authority") or "")
    unknown: list[int] = []
    names: dict[int, str] = {}

    def school(doc: Document, cluster_key: str | None) -> matrix.School:
        names[doc.doc_id] = str(doc["name"])
        scores = scores_of(doc)
        if scores is None:
            if doc.get("status") in DIGITAL:
                scores = dict.fromkeys(matrix.CRITERIA, threshold)
            else:
                scores = {}
                if cluster_key is not None:
                    unknown.append(doc.doc_id)
        # A Digital School from outside mentors on its standing as one;
        # only the cluster's own schools are read from their comments.
        comments = (store.comments_of(doc.doc_id, latest=COMMENTS_READ)
                    if cluster_key is not None else [])
        return matrix.School(str(doc.doc_id), council, scores, cluster_key,
                             overrides_of(comments))

    members = [school(s, str(cluster_id)) for s in store.schools_of(cluster_id)]
    outside: list[matrix.School] = []
    committed: dict[tuple[str, str], int] = {}
    for other in store.all_clusters():
        if other.doc_id == cluster_id:
            continue
        for tie in (other.get("support_proposal") or {}).get("ties", ()):
            if not tie.get("in_cluster", True):
                key = (str(tie["mentor"]), str(tie["criterion"]))
                committed[key] = committed.get(key, 0) + 1
        if str(other.get("local_authority") or "") != council:
            continue
        outside += [school(s, None) for s in store.schools_of(other.doc_id)
                    if s.get("status") in DIGITAL]
    return Input(members, outside, unknown, names, committed)


def to_record(proposal: matrix.Proposal, unknown: Sequence[int]
              ) -> dict[str, Any]:
    return {
        "standings": {school: {c: str(s) for c, s in row.items()}
                      for school, row in proposal.standings.items()},
        "unknown": list(unknown),
        "ties": [{"mentor": int(t.mentor), "mentee": int(t.mentee),
                  "criterion": t.criterion, "in_cluster": t.in_cluster}
                 for t in proposal.ties],
        "fallbacks": [{"school": int(f.school), "criterion": f.criterion,
                       "support": str(f.support)} for f in proposal.fallbacks],
    }


# -- proposing -----------------------------------------------------------


class Supports:
    """The matrix of supports for one Workflow (its store, clock, queue)."""

    def __init__(self, flow: Any) -> None:
        self.flow = flow
        self.store = flow.store

    # on assignment

    def propose(self, cluster_id: int) -> bool:
        """Work out the proposal for a cluster that has its validator,
        keep it and send it to the validator; False if there is none to
        make (no validator, or one already made)."""
        cluster = self.store.cluster(cluster_id)
        if not cluster.get("validator") or cluster.get("support_proposal"):
            return False
        rules = self.flow.rules.matrix
        found = build_input(self.store, cluster_id, rules.strength_threshold)
        if not found.cluster:
            return False
        try:
            proposal = matrix.propose(found.cluster, found.outside,
                                      settings(rules), found.committed)
        except ValueError as exc:
            log.error("no matrix of supports for cluster %s: %s",
                      cluster_id, exc)
            return False
        record = {**to_record(proposal, found.unknown), "status": PROPOSED,
                  "version": 1, "by": "mailbot",
                  "proposed_at": stamp(self.flow.clock.now())}
        self.store.update_cluster(cluster_id, {"support_proposal": record})
        self.store.add_event(self.flow.clock.now(), "support-proposed",
                             cluster_id=cluster_id,
                             detail=f"{len(record['ties'])} ties, "
                                    f"{len(record['fallbacks'])} fallbacks")
        self._send_proposal(cluster_id)
        return True

    def _names(self, cluster_id: int) -> dict[int, str]:
        """Every school a proposal for the cluster may name, by id."""
        cluster = self.store.cluster(cluster_id)
        council = cluster.get("local_authority")
        names = {s.doc_id: str(s["name"])
                 for s in self.store.schools_of(cluster_id)}
        for other in self.store.all_clusters():
            if other.doc_id != cluster_id \
                    and other.get("local_authority") == council:
                names.update({s.doc_id: str(s["name"])
                              for s in self.store.schools_of(other.doc_id)
                              if s.get("status") in DIGITAL})
        return names

    def context(self, cluster_id: int, record: Mapping[str, Any]
                ) -> dict[str, Any]:
        cluster = self.store.cluster(cluster_id)
        names = self._names(cluster_id)
        members = self.store.schools_of(cluster_id)
        unknown = set(record.get("unknown", ()))
        rows = []
        for number, school in enumerate(members, 1):
            row = record["standings"].get(str(school.doc_id), {})
            rows.append({
                "number": number, "name": school["name"],
                "unknown": school.doc_id in unknown,
                "cells": [row.get(c, "gap") for c in matrix.CRITERIA]})
        ties = [{"mentor": names.get(t["mentor"], f"school {t['mentor']}"),
                 "mentee": names.get(t["mentee"], f"school {t['mentee']}"),
                 "criterion": t["criterion"],
                 "outside": not t.get("in_cluster", True)}
                for t in record["ties"]]
        fallbacks = [{"school": names.get(f["school"], f"school {f['school']}"),
                      "criterion": f["criterion"],
                      "support": _support_words(f["support"])}
                     for f in record["fallbacks"]]
        return {
            "validator": cluster["validator"], "cluster": cluster_view(cluster),
            "schools": [school_view(self.store, s) for s in members],
            "criteria": [{"name": c, "short": SHORT.get(c, c)}
                         for c in matrix.CRITERIA],
            "rows": rows, "ties": ties, "fallbacks": fallbacks,
            "unknown": [r["name"] for r in rows if r["unknown"]],
            "threshold": _percent(self.flow.rules.matrix.strength_threshold),
            "version": record.get("version", 1),
            "revised": record.get("version", 1) > 1,
            "csv_name": CSV_NAME,
            "table": table_lines(rows, matrix.CRITERIA),
        }

    def csv_of(self, cluster_id: int, record: Mapping[str, Any]) -> bytes:
        names = self._names(cluster_id)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for t in record["ties"]:
            writer.writerow([t["criterion"], t["mentee"],
                             names.get(t["mentee"], ""), t["mentor"],
                             names.get(t["mentor"], ""), MENTOR])
        for f in record["fallbacks"]:
            writer.writerow([f["criterion"], f["school"],
                             names.get(f["school"], ""), "", "",
                             f["support"]])
        return out.getvalue().encode("utf-8")

    def validator_changed(self, cluster_id: int) -> None:
        """A cluster's new validator (staff's choice) gets the proposal to
        answer: made now if there is none, sent again if it waits for an
        answer. The validator replaced can no longer answer it."""
        record = self.store.cluster(cluster_id).get("support_proposal")
        if record is None:
            self.propose(cluster_id)
        elif record.get("status") == PROPOSED:
            self._send_proposal(cluster_id)

    def _send_proposal(self, cluster_id: int, answering: Incoming | None = None,
                       ) -> None:
        cluster = self.store.cluster(cluster_id)
        record = cluster["support_proposal"]
        validator = cluster["validator"]
        key = (f"support-proposal:{cluster_id}:{record['version']}:"
               f"{validator['email']}")
        self.flow.queue(Draft(
            key=key, kind=PROPOSAL_KIND, template="support-proposal",
            to=(validator["email"],), cluster_id=cluster_id,
            reference=self.flow.tokens.for_person(validator["email"]),
            reply_to_id=answering.message_id if answering else "",
            references=answering.references if answering else (),
            exempt_from_reply_limit=True,
            context=self.context(cluster_id, record),
            attachments=(FileAttachment(CSV_NAME, "text/csv; charset=utf-8",
                                        self.csv_of(cluster_id, record)),)))

    # the validator's answer

    def cluster_answered(self, mail: Incoming) -> int | None:
        """The cluster whose proposal the mail answers: by its thread, else
        by the validator's own reference in it; None if it answers none."""
        for ref in mail.thread_ids:
            sent = self.store.outgoing_by_message_id(ref)
            if sent is None:
                continue
            if sent.get("kind") != PROPOSAL_KIND:
                # A reply to other mail of ours (a visit request, say) is
                # not about the matrix, whatever reference it carries.
                return None
            cluster_id = sent.get("cluster_id")
            return int(cluster_id) if cluster_id is not None else None
        tokens = self.flow.tokens
        person = tokens.for_person(mail.sender.email)
        if person not in mail.subject.lower():
            return None
        waiting = [c.doc_id for c in self.store.all_clusters()
                   if (c.get("support_proposal") or {}).get("status") == PROPOSED
                   and (c.get("validator") or {}).get("email", "").lower()
                   == mail.sender.email.lower()]
        return waiting[0] if len(waiting) == 1 else None

    def on_mail(self, mail: Incoming) -> Outcome | None:
        cluster_id = self.cluster_answered(mail)
        if cluster_id is None:
            return None
        cluster = self.store.cluster(cluster_id)
        validator = (cluster.get("validator") or {}).get("email", "")
        if mail.sender.email.lower() != str(validator).lower():
            self.store.add_event(self.flow.clock.now(), "support-reply-refused",
                                 cluster_id=cluster_id,
                                 message_id=mail.message_id,
                                 detail=mail.sender.email)
            return Outcome(SET_ASIDE, PROPOSAL_KIND,
                           "a reply to the matrix of supports not from the "
                           "cluster's validator", cluster_id)
        record = cluster.get("support_proposal") or {}
        if record.get("status") != PROPOSED:
            return Outcome(SET_ASIDE, PROPOSAL_KIND,
                           "the validator wrote about a matrix of supports "
                           "already accepted", cluster_id)
        text = new_text_of(mail)
        # Outlook and phones write "don\u2019t": read it as "don't".
        plain = text.replace("\u2019", "'").replace("\u02bc", "'")
        accepts = bool(_ACCEPT.search(plain)) and not _NEGATED.search(plain)
        changed, problems = self.changes(cluster_id, record, mail, text)
        if problems:
            self._refuse(cluster_id, mail, problems)
            return Outcome(HANDLED, PROPOSAL_KIND,
                           f"changes to the matrix of supports refused: "
                           f"{len(problems)} problems", cluster_id)
        now = self.flow.clock.now()
        if changed is not None:
            record = {**record, **changed, "version": record["version"] + 1,
                      "by": "validator", "proposed_at": stamp(now)}
            self.store.update_cluster(cluster_id, {"support_proposal": record})
            self.store.add_event(now, "support-changed", cluster_id=cluster_id,
                                 message_id=mail.message_id,
                                 detail=mail.sender.email)
            if not accepts:
                self._send_proposal(cluster_id, mail)
                return Outcome(HANDLED, PROPOSAL_KIND,
                               "matrix of supports changed by the validator; "
                               "sent back to be accepted", cluster_id)
        if not accepts:
            return Outcome(SET_ASIDE, PROPOSAL_KIND,
                           "a reply to the matrix of supports that neither "
                           "accepts nor changes it", cluster_id)
        self.accept(cluster_id, mail)
        return Outcome(HANDLED, PROPOSAL_KIND,
                       "matrix of supports accepted by the validator",
                       cluster_id)

    def accept(self, cluster_id: int, mail: Incoming) -> None:
        now = self.flow.clock.now()
        cluster = self.store.cluster(cluster_id)
        record = {**cluster["support_proposal"], "status": ACCEPTED,
                  "accepted_at": stamp(now), "accepted_by": "validator"}
        self.store.update_cluster(cluster_id, {"support_proposal": record})
        self.store.add_event(now, "support-accepted", cluster_id=cluster_id,
                             message_id=mail.message_id,
                             detail=mail.sender.email)
        names = self._names(cluster_id)
        lead = str((cluster.get("lead") or {}).get("email") or "")
        view = cluster_view(cluster)
        for school in self.store.schools_of(cluster_id):
            sid = school.doc_id

            def name(i: int) -> str:
                return names.get(i, f"school {i}")

            context = {
                "school": school_view(self.store, school), "cluster": view,
                "contact_name": school.get("contact_name"),
                "validator": cluster["validator"],
                "mentored": [{"mentor": name(t["mentor"]),
                              "criterion": t["criterion"],
                              "email": self._contact(t["mentor"])}
                             for t in record["ties"] if t["mentee"] == sid],
                "mentoring": [{"mentee": name(t["mentee"]),
                               "criterion": t["criterion"],
                               "email": self._contact(t["mentee"])}
                              for t in record["ties"] if t["mentor"] == sid],
                "fallbacks": [{"criterion": f["criterion"],
                               "support": _support_words(f["support"])}
                              for f in record["fallbacks"]
                              if f["school"] == sid],
            }
            contact = str(school.get("contact_email") or "")
            cc = (lead,) if lead and lead.lower() != contact.lower() else ()
            self.flow.queue(Draft(
                key=f"support-plan:{cluster_id}:{record['version']}:{sid}",
                kind=PLAN_KIND, template="support-plan",
                to=(contact,) if contact else (), cc=cc,
                cluster_id=cluster_id, school_id=sid, context=context))
            self.store.add_event(now, "support-plan", school_id=sid,
                                 cluster_id=cluster_id,
                                 detail=f"{len(context['mentored'])} mentors, "
                                        f"{len(context['mentoring'])} mentees, "
                                        f"{len(context['fallbacks'])} other")

    def _contact(self, school_id: int) -> str | None:
        try:
            return self.store.school(school_id).get("contact_email")
        except KeyError:
            return None

    def _refuse(self, cluster_id: int, mail: Incoming,
                problems: list[str]) -> None:
        cluster = self.store.cluster(cluster_id)
        self.flow.queue(Draft(
            key=f"support-problems:{mail.ref}", kind=PROPOSAL_KIND,
            template="support-problems", to=(mail.sender.email,),
            cluster_id=cluster_id,
            reference=self.flow.tokens.for_person(mail.sender.email),
            reply_to_id=mail.message_id, references=mail.references,
            exempt_from_reply_limit=True,
            context={"validator": cluster["validator"],
                     "cluster": cluster_view(cluster),
                     "schools": [school_view(self.store, s) for s in
                                 self.store.schools_of(cluster_id)],
                     "problems": problems}))

    # reading changes

    def changes(self, cluster_id: int, record: Mapping[str, Any],
                mail: Incoming, text: str
                ) -> tuple[dict[str, Any] | None, list[str]]:
        """The ties and fallbacks the validator's mail sets, if it changes
        them (an edited CSV first, else lines of its text), and the
        problems found (then nothing changes)."""
        members = {s.doc_id: str(s["name"])
                   for s in self.store.schools_of(cluster_id)}
        everyone = self._names(cluster_id)
        for attachment in mail.attachments:
            if attachment.filename.lower().endswith(".csv") \
                    or "csv" in attachment.content_type.lower():
                if attachment.unread:
                    return None, [(f"{attachment.filename}: not read "
                                  f"({attachment.unread})")]
                return _from_csv(attachment.data, members, everyone)
        return _from_text(text, record, members, everyone)


def table_lines(rows: Sequence[Mapping[str, Any]], criteria: Sequence[str]
                ) -> list[str]:
    """The school by criterion table for the plain text: schools by number,
    criteria by short name."""
    lines = ["School " + "".join(f"{SHORT.get(c, c)[:11]:<12}"
                                 for c in criteria).rstrip()]
    for row in rows:
        mark = "?" if row["unknown"] else ""
        lines.append(f"{row['number']:>5}. " + "".join(
            f"{cell + mark:<12}" for cell in row["cells"]).rstrip())
    lines.append("")
    lines += [f"{row['number']:>5}. {row['name']}" for row in rows]
    return lines


def _support_words(support: str) -> str:
    return {"validator": "the validator's guidance",
            "council": "the council",
            }.get(support, str(support))


def _percent(value: float) -> str:
    return f"{value:g}"


class _Names:
    """School names as a validator may write them: whole, or by a word or
    start only one school's name has."""

    def __init__(self, names: Mapping[int, str]) -> None:
        self.names = dict(names)

    def find(self, text: str) -> tuple[int | None, str]:
        want = " ".join(text.strip(" .,;:'\"").lower().split())
        if not want:
            return None, "no school named"
        if want.lstrip("#").isdigit() and int(want.lstrip("#")) in self.names:
            return int(want.lstrip("#")), ""
        exact = [i for i, n in self.names.items() if n.lower() == want]
        if len(exact) == 1:
            return exact[0], ""
        start = [i for i, n in self.names.items()
                 if n.lower().startswith(want)
                 or re.search(rf"\b{re.escape(want)}\b", n.lower())]
        if len(start) == 1:
            return start[0], ""
        if not start:
            return None, f"no school called {text.strip()!r}"
        return None, (f"{text.strip()!r} could be any of "
                      + "; ".join(sorted(self.names[i] for i in start)))


def _from_text(text: str, record: Mapping[str, Any], members: Mapping[int, str],
               everyone: Mapping[int, str]
               ) -> tuple[dict[str, Any] | None, list[str]]:
    ties = [dict(t) for t in record["ties"]]
    fallbacks = [dict(f) for f in record["fallbacks"]]
    mentors, mentees = _Names(everyone), _Names(members)
    problems: list[str] = []
    changed = False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(">"):
            continue
        support = _SUPPORTS.match(line)
        tie = None if support else _MENTORS.match(line)
        found = support or tie
        if found is None:
            continue
        said = f"{line!r}: "
        mentee, why = mentees.find(found["mentee"])
        crit = full_criterion(found["criterion"])
        if mentee is None:
            problems.append(said + (why if "could be" in why else
                                    f"{found['mentee'].strip()!r} is not a "
                                    "school of the cluster"))
        if crit is None:
            problems.append(said + f"{found['criterion'].strip()!r} is not a "
                            "criterion of the self-review")
        mentor = None
        if tie is not None:
            mentor, why = mentors.find(tie["mentor"])
            if mentor is None:
                problems.append(said + why)
            elif mentor == mentee:
                problems.append(said + "a school cannot mentor itself")
        if mentee is None or crit is None or (tie is not None and (
                mentor is None or mentor == mentee)):
            continue
        changed = True
        removing = bool(found["remove"])
        if tie is not None:
            before = len(ties)
            ties = [t for t in ties if not (
                t["mentee"] == mentee and t["criterion"] == crit
                and (removing is False or t["mentor"] == mentor))]
            if removing:
                if len(ties) == before:
                    problems.append(said + "the proposal has no such tie")
                continue
            fallbacks = [f for f in fallbacks if not (
                f["school"] == mentee and f["criterion"] == crit)]
            ties.append({"mentor": mentor, "mentee": mentee, "criterion": crit,
                         "in_cluster": mentor in members})
        else:
            name = SUPPORTS.get(found["support"].lower(),
                                found["support"].lower())
            if removing:
                before = len(fallbacks)
                fallbacks = [f for f in fallbacks if not (
                    f["school"] == mentee and f["criterion"] == crit
                    and f["support"] == name)]
                if len(fallbacks) == before:
                    problems.append(said + "the proposal has no such support")
                continue
            ties = [t for t in ties if not (
                t["mentee"] == mentee and t["criterion"] == crit)]
            fallbacks = [f for f in fallbacks if not (
                f["school"] == mentee and f["criterion"] == crit)]
            fallbacks.append({"school": mentee, "criterion": crit,
                              "support": name})
    if problems:
        return None, problems
    if not changed:
        return None, []
    return {"ties": ties, "fallbacks": fallbacks}, []


def _from_csv(data: bytes, members: Mapping[int, str],
              everyone: Mapping[int, str]
              ) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", "replace")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return None, ["the CSV file is empty"]
    head = [h.strip().lower().replace(" ", "_") for h in rows[0]]
    missing = [c for c in CSV_COLUMNS if c not in head]
    if missing:
        return None, ["the CSV file lacks the columns " + ", ".join(missing)
                      + " (keep the first row as sent)"]
    at = {c: head.index(c) for c in CSV_COLUMNS}
    mentors, mentees = _Names(everyone), _Names(members)
    ties: list[dict[str, Any]] = []
    fallbacks: list[dict[str, Any]] = []
    problems: list[str] = []
    for n, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        cell = {c: (row[i].strip() if i < len(row) else "")
                for c, i in at.items()}
        said = f"row {n}: "
        crit = full_criterion(cell["criterion"])
        if crit is None:
            problems.append(said + f"{cell['criterion']!r} is not a criterion "
                            "of the self-review")
        mentee = _by_id_or_name(cell["mentee_id"], cell["mentee_school"],
                                mentees, problems, said, "of the cluster")
        support = cell["support"].lower()
        if support in ("", MENTOR) or cell["mentor_id"] or cell["mentor_school"]:
            mentor = _by_id_or_name(cell["mentor_id"], cell["mentor_school"],
                                    mentors, problems, said, "")
            if mentor is not None and mentor == mentee:
                problems.append(said + "a school cannot mentor itself")
            elif None not in (mentor, mentee, crit):
                ties.append({"mentor": mentor, "mentee": mentee,
                             "criterion": crit,
                             "in_cluster": mentor in members})
        elif support in SUPPORTS:
            if None not in (mentee, crit):
                fallbacks.append({"school": mentee, "criterion": crit,
                                  "support": SUPPORTS[support]})
        else:
            problems.append(said + f"{cell['support']!r} is not a support "
                            "(mentor, validator, council or Education "
                            "Scotland)")
    if problems:
        return None, problems
    return {"ties": ties, "fallbacks": fallbacks}, []


def _by_id_or_name(given_id: str, name: str, names: _Names,
                   problems: list[str], said: str, where: str) -> int | None:
    if given_id.strip().lstrip("#").isdigit():
        school_id = int(given_id.strip().lstrip("#"))
        if school_id in names.names:
            return school_id
        problems.append(said + f"no school {where or 'that may mentor'} has "
                        f"the id {given_id.strip()}".replace("  ", " "))
        return None
    found, why = names.find(name)
    if found is None:
        problems.append(said + why)
    return found


# -- examples for check-config (examples.py) -----------------------------------


def example_contexts(cluster: Mapping[str, Any],
                     schools: Sequence[Mapping[str, Any]],
                     validator: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    names = [str(s["name"]) for s in schools]
    rows = [{"number": n, "name": name, "unknown": n == 2,
             "cells": ["strength" if (n + i) % 2 else "gap"
                       for i in range(len(matrix.CRITERIA))]}
            for n, name in enumerate(names, 1)]
    proposal = {
        "validator": validator, "cluster": cluster, "schools": list(schools),
        "criteria": [{"name": c, "short": SHORT.get(c, c)}
                     for c in matrix.CRITERIA],
        "rows": rows, "table": table_lines(rows, matrix.CRITERIA),
        "ties": [{"mentor": names[0], "mentee": names[1],
                  "criterion": "School Culture", "outside": False},
                 {"mentor": "Balmullo Primary School", "mentee": names[0],
                  "criterion": "Professional Development", "outside": True}],
        "fallbacks": [{"school": names[1], "criterion": "Leadership & Vision",
                       "support": _support_words("validator")}],
        "unknown": [names[1]], "threshold": "70", "version": 2,
        "revised": True, "csv_name": CSV_NAME}
    school = schools[0]
    plan = {
        "school": school, "cluster": cluster,
        "contact_name": school.get("contact_name"), "validator": validator,
        "mentored": [{"mentor": names[1], "criterion": "School Culture",
                      "email": schools[1].get("contact_email")}],
        "mentoring": [{"mentee": names[2], "criterion": "Leadership & Vision",
                       "email": None}],
        "fallbacks": [{"criterion": "Professional Development",
                       "support": "the council"}]}
    problems = {"validator": validator, "cluster": cluster,
                "schools": list(schools),
                "problems": [("'Kirkton mentors Glenbrea in School Culture': "
                              "'Glenbrea' is not a school of the cluster")]}
    return {"support-proposal": proposal, "support-plan": plan,
            "support-problems": problems}


def more_example_contexts(cluster: Mapping[str, Any],
                          schools: Sequence[Mapping[str, Any]],
                          validator: Mapping[str, Any]
                          ) -> dict[str, list[dict[str, Any]]]:
    """Further contexts, for the branches example_contexts' do not take."""
    main = example_contexts(cluster, schools, validator)
    # A first proposal for a cluster strong in every criterion: no gaps.
    rows = [{**row, "unknown": False,
             "cells": ["strength"] * len(matrix.CRITERIA)}
            for row in main["support-proposal"]["rows"]]
    first = {**main["support-proposal"], "rows": rows,
             "table": table_lines(rows, matrix.CRITERIA), "ties": [],
             "fallbacks": [], "unknown": [], "version": 1, "revised": False}
    # The plan of a school that mentors one other and needs no support,
    # and of one that mentors none.
    school, other = schools[1], schools[0]
    mentor = {**main["support-plan"], "school": school,
              "contact_name": school.get("contact_name"), "mentored": [],
              "mentoring": [{"mentee": other["name"],
                             "criterion": "School Culture",
                             "email": other.get("contact_email")}],
              "fallbacks": []}
    return {"support-proposal": [first],
            "support-plan": [mentor, {**main["support-plan"], "mentoring": []}]}
