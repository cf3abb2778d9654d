"""Self-review results by email, the 70% rule for visits, visit dates,
outcomes and awards.

A school's mail carrying its results (an attached CSV or workbook, or
scores in its text) is kept on the school as `self_review` and answered
with what was read. A visit request is passed to the validator only when
the school's latest results reach 70% in every criterion (and were sent
after any "not yet" outcome); otherwise the school is told kindly what is
short. The validator's answer to the visit-request notice gives the date
of the visit (kept as `visit_at`, the school told) or its outcome:
awarded (the school congratulated, the cluster's lead copied) or not yet
(the school told what to work on, and back to self-review complete so it
can send new results and apply again).

Handlers follow workflow.py: they change the record through the Store,
queue Drafts and return an Outcome; nothing is sent or committed here.
The workflow and the classifier call in through a few small hooks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tinydb.table import Document

from mailbot import authres, selfreview, tagging, visitdate
from mailbot.compose import UK, Draft
from mailbot.errors import SetAside
from mailbot.mail import Incoming
from mailbot.outcome import HANDLED, SET_ASIDE, Outcome
from mailbot.quoting import new_text_of
from mailbot.selfreview import Criterion, Reading, Results, Score
from mailbot.store import (
    ALREADY_AWARDED,
    AWARDED,
    SELF_REVIEW_COMPLETE,
    Store,
    stamp,
)
from mailbot.views import cluster_view, school_view

if TYPE_CHECKING:
    from mailbot.classify import Understanding
    from mailbot.workflow import Workflow

RESULTS = "results"
# A validator's (or staff member's) answer about a school's visit: its
# date or its outcome.
VISIT_REPLY = "visit-reply"
NOT_YET = "not-yet"
# How much of the validator's notes the school is sent, and how many
# history lines the validator's notice carries.
NOTES_CHARS = 3000
HISTORY_LINES = 30

_NOT_YET = re.compile(
    r"\bnot\s+(?:yet|ready|(?:been\s+|be\s+)?awarded|(?:yet\s+)?met)\b"
    r"|\bnot[- ]yet\b|\bunsuccessful\b", re.IGNORECASE)
_AWARDED = re.compile(r"\b(?:awarded|award\s+(?:is\s+)?confirmed|"
                      r"achieved\s+digital\s+school\s+status)\b",
                      re.IGNORECASE)
# "will be awarded if...": a hope, not an outcome.
_CONDITIONAL = re.compile(r"\b(?:will|would|could|should|may|might|if|once|"
                          r"when|hope|hopefully)\b[^.!?\n]{0,40}\bawarded\b",
                          re.IGNORECASE)


# -- reading ---------------------------------------------------------------

def reading_of(mail: Incoming) -> Reading:
    """The results a message carries, from its attachments then its new
    text, read once per message."""
    return mail.once("results.reading", lambda: _read(mail))


def _read(mail: Incoming) -> Reading:
    schools: dict[str, Results] = {}
    problems: list[str] = []
    for attachment in mail.attachments:
        if attachment.unread:
            continue
        try:
            found = selfreview.from_attachment(attachment)
        except SetAside as exc:
            problems.append(f"{attachment.filename}: {exc.reason}")
            continue
        _merge(schools, found)
        problems += found.problems
    text = new_text_of(mail)
    # What the text says is read whole beside a sheet's results, since
    # its problems go with them; alone, only if it may give a score.
    if schools or selfreview.may_give_scores(text):
        found = selfreview.from_text(text)
        _merge(schools, found)
        problems += found.problems
    return Reading(schools, problems[:selfreview.MAX_PROBLEMS])


def _merge(into: dict[str, Results], reading: Reading) -> None:
    for name, results in reading.schools.items():
        before = into.get(name)
        scores = dict(before.scores) if before else {}
        scores.update(results.scores)
        into[name] = Results(scores)


def results_for(reading: Reading, school_name: str) -> Results | None:
    """The school's own results in a reading: those naming no school, or
    those naming this one; None when there are none (a cluster's sheet
    that names only other schools is for a person)."""
    own = reading.schools.get(selfreview.OWN)
    named = [r for name, r in reading.schools.items()
             if name and name.strip().lower() == school_name.strip().lower()]
    found = [r for r in (own, *named) if r is not None and r.scores]
    if not found:
        return None
    scores: dict[Criterion, Score] = {}
    for results in found:
        scores.update(results.scores)
    return Results(scores)


def carries_results(mail: Incoming) -> bool:
    """Whether a school's mail gives at least one score (classify hook)."""
    return any(r.scores for r in reading_of(mail).schools.values())


# -- the record ------------------------------------------------------------

def stored(results: Results, problems: list[str], now: datetime,
           message_id: str, before: dict[str, Any] | None) -> dict[str, Any]:
    """The `self_review` field: the criteria sent now over those sent
    before (a school may send one criterion again)."""
    percent = dict((before or {}).get("percent") or {})
    counts = dict((before or {}).get("counts") or {})
    estimated = set((before or {}).get("estimated") or [])
    for which, score in results.scores.items():
        percent[str(which)] = round(score.percent, 1)
        if score.counts is not None:
            counts[str(which)] = {"addressed": score.counts.addressed,
                                  "partially": score.counts.partially,
                                  "not_addressed": score.counts.not_addressed}
        else:
            counts.pop(str(which), None)
        if score.estimated:
            estimated.add(str(which))
        else:
            estimated.discard(str(which))
    return {"percent": percent, "counts": counts,
            "estimated": sorted(estimated), "received_at": stamp(now),
            "message_id": message_id, "problems": list(problems)}


def as_results(self_review: dict[str, Any] | None) -> Results:
    scores = {}
    for key, value in ((self_review or {}).get("percent") or {}).items():
        try:
            which = Criterion(key)
        except ValueError:
            continue
        scores[which] = Score(float(value))
    return Results(scores)


def short_of(self_review: dict[str, Any] | None) -> list[Criterion]:
    """The criteria below the threshold (or not given); all of them with
    no results."""
    return selfreview.ready_for_validation(as_results(self_review))[1]


def scores_view(self_review: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per criterion, in the programme's order, for templates."""
    review = self_review or {}
    percent = review.get("percent") or {}
    counts = review.get("counts") or {}
    estimated = set(review.get("estimated") or [])
    rows = []
    for which in Criterion:
        value = percent.get(str(which))
        rows.append({
            "name": which.full,
            "percent": None if value is None else _shown(float(value)),
            "counts": counts.get(str(which)),
            "estimated": str(which) in estimated,
            "short": value is None or float(value) < selfreview.THRESHOLD,
        })
    return rows


def _shown(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def take_results(flow: Workflow, mail: Incoming, school: Document) -> bool:
    """Keep the results a school's mail carries, if any, on the school and
    in its history (workflow hook: completion and visit requests too).
    True if there were any."""
    reading = reading_of(mail)
    results = results_for(reading, str(school["name"]))
    if results is None:
        return False
    keep_results(flow, school, results, reading.problems, mail.message_id)
    return True


def keep_results(flow: Workflow, school: Document, results: Results,
                 problems: list[str], message_id: str, by: str = ""
                 ) -> dict[str, Any]:
    """Keep results on the school, over those it had, and in its history
    (with `by`, who sent them, when not the school); the `self_review`
    field kept. For a school's own mail (take_results) and for a sheet
    staff send for several schools (commands.py)."""
    now = flow.clock.now()
    review = stored(results, problems, now, message_id,
                    school.get("self_review"))
    flow.store.update_school(school.doc_id, {"self_review": review})
    flow.store.add_event(
        now, "self-review-results", school_id=school.doc_id,
        cluster_id=school["cluster_id"], message_id=message_id,
        detail=results_summary(review) + (f" ({by})" if by else ""))
    return review


def results_summary(review: dict[str, Any]) -> str:
    """The stored results in a line: each criterion's percentage, then
    those short of the threshold."""
    short = short_of(review)
    return (", ".join(f"{Criterion(k).full} {_shown(float(v))}%"
                      for k, v in review["percent"].items())
            + (f"; short of {selfreview.THRESHOLD}%: "
               + ", ".join(c.full for c in short) if short else
               f"; {selfreview.THRESHOLD}% or more in every criterion"))


def _needs_new_results(school: Document) -> bool:
    """After a "not yet", only results sent since count."""
    review = school.get("self_review") or {}
    outcome_at = school.get("visit_outcome_at")
    return bool(school.get("visit_outcome") == NOT_YET and outcome_at
                and str(review.get("received_at") or "") <= str(outcome_at))


# -- handlers ----------------------------------------------------------------

def on_results(flow: Workflow, mail: Incoming, understood: Understanding
               ) -> Outcome:
    """A school's mail with its results (and nothing asking for a visit
    or saying it has finished)."""
    assert understood.school_id is not None
    school = flow.store.school(understood.school_id)
    if not take_results(flow, mail, school):
        return Outcome(SET_ASIDE, RESULTS, "no results for this school",
                       school["cluster_id"], school.doc_id)
    school = flow.store.school(school.doc_id)
    receipt(flow, mail, school)
    review = school["self_review"]
    return Outcome(HANDLED, RESULTS,
                   f"self-review results stored for {school['name']}"
                   + (f" ({len(short_of(review))} criteria short)"
                      if short_of(review) else " (ready for validation)"),
                   school["cluster_id"], school.doc_id)


def receipt(flow: Workflow, mail: Incoming, school: Document) -> None:
    review = school.get("self_review") or {}
    short = short_of(review)
    flow._reply(mail, school.doc_id, "results-receipt", "results-receipt", {
        "scores": scores_view(review),
        "short": [c.full for c in short],
        "problems": list(review.get("problems") or []),
        "estimated": bool(review.get("estimated")),
        "threshold": selfreview.THRESHOLD,
        "ready": not short,
    })


def visit_gate(flow: Workflow, mail: Incoming, school: Document
               ) -> Outcome | None:
    """The 70% rule (workflow hook, at the start of a visit request):
    results the mail carries are kept first; then a school whose results
    show it short of 70% in a criterion is told kindly and the validator
    is not. None when the request may go on: also when no results are on
    record, since many schools send them only to the validator, who sees
    in the notice that mailbot has none."""
    took = take_results(flow, mail, school)
    school = flow.store.school(school.doc_id)
    review = school.get("self_review")
    short = short_of(review)
    stale = _needs_new_results(school)
    if not review or (not short and not stale):
        return None
    now = flow.clock.now()
    flow.store.add_event(
        now, "visit-not-yet", school_id=school.doc_id,
        cluster_id=school["cluster_id"], message_id=mail.message_id,
        detail="results not updated since the last visit" if stale and not short
        else "short: " + ", ".join(c.full for c in short))
    flow._reply(mail, school.doc_id, "visit-not-yet", "visit-not-yet", {
        "stale": stale,
        "scores": scores_view(review),
        "short": [c.full for c in short],
        "problems": list(review.get("problems") or []) if took else [],
        "threshold": selfreview.THRESHOLD,
    })
    # Not "visit-request": a handled visit request is one passed on.
    return Outcome(HANDLED, "visit-not-yet",
                   f"visit request from {school['name']} not passed on: "
                   + ("no new results since the last visit" if stale and not short
                      else f"short of {selfreview.THRESHOLD}% in "
                      + ", ".join(c.full for c in short)),
                   school["cluster_id"], school.doc_id)


def visit_context(store: Store, school: Document) -> dict[str, Any]:
    """What the validator's visit-request notice adds: the school's
    results and history (workflow hook)."""
    school = store.school(school.doc_id)
    review = school.get("self_review") or {}
    events = store.history_of_school(school.doc_id)[-HISTORY_LINES:]
    return {
        "scores": scores_view(review) if review else [],
        "results_received_at": review.get("received_at"),
        "history": [{"at": e["at"], "event": str(e["event"]).replace("-", " "),
                     "detail": str(e.get("detail") or "")[:160]}
                    for e in events],
        "comments_count": store.comment_count(school.doc_id),
    }


def tags_of(comment: Mapping[str, Any]) -> list[dict[str, str]]:
    """The criteria a stored comment speaks of, as strengths or weaknesses:
    as tagged when it arrived, or (kept before tags were) worked out now."""
    if isinstance(comment.get("tags"), list):
        return list(comment["tags"])
    return comment_tags(str(comment.get("text") or ""))


def comment_tags_of(mail: Incoming) -> list[dict[str, str]]:
    """The tags of the comment a mail may carry (its new text), worked
    out once per message (and in the parsing process, ahead)."""
    return mail.once("results.comment_tags",
                     lambda: comment_tags(new_text_of(mail).strip()))


def comment_tags(text: str) -> list[dict[str, str]]:
    """The tags of a comment as stored with it (workflow hook), in order:
    criterion, kind and the phrase that named the criterion. The words
    that said so are not kept twice: they are in the comment's text."""
    return [{"criterion": str(t.criterion), "kind": t.kind, "phrase": t.phrase}
            for t in tagging.tag_comment(text)]


# -- the validator's answer --------------------------------------------------

def visit_reply_of(mail: Incoming, store: Store, people: frozenset[str]
                   ) -> Understanding | None:
    """A programme person's answer about a school's visit (classify hook):
    a reply in the thread of the visit-request notice sent to them, or
    mail from a cluster's validator naming one school of theirs that has
    asked for a visit. None for anything else."""
    from mailbot.classify import Understanding  # classify imports this

    sender = mail.sender.email
    if sender not in people:
        return None
    for ref in mail.thread_ids:
        sent = store.outgoing_by_message_id(ref)
        if sent is None:
            continue
        if sent.get("kind") != "visit-request":
            return None  # an answer to other mail of ours
        if sender not in {str(a).lower() for a in sent.get("to", ())}:
            continue
        school_id = sent.get("school_id")
        if school_id is None or store.schools.get(school_id) is None:
            return None
        return Understanding(VISIT_REPLY, sent.get("cluster_id"), school_id,
                             f"answers the visit-request notice {ref}")
    words = f"{mail.subject}\n{new_text_of(mail)}".lower()
    schools = [s for c in store.all_clusters()
               if (c.get("validator") or {}).get("email", "").lower() == sender
               for s in store.schools_of(c.doc_id)]
    theirs = [s for s in _named(schools, words) if s.get("visit_requested_at")]
    if len(theirs) == 1:
        school = theirs[0]
        return Understanding(VISIT_REPLY, school["cluster_id"], school.doc_id,
                             f"the validator names {school['name']}")
    return None


def _named(schools: list[Document], words: str) -> list[Document]:
    """The schools whose names stand in `words` (lower case) as whole
    words, and not only inside another's name that stands there too:
    "Old Glenbrae Primary School" names that school, not Glenbrae
    Primary School."""
    spans = {s.doc_id: [m.span() for m in re.finditer(
        rf"(?<!\w){re.escape(str(s['name']).lower())}(?!\w)", words)]
        for s in schools if str(s.get("name") or "").strip()}
    every = [span for found in spans.values() for span in found]

    def inside_another(span: tuple[int, int]) -> bool:
        return any(a <= span[0] and span[1] <= b and (a, b) != span
                   for a, b in every)

    return [s for s in schools
            if any(not inside_another(span) for span in spans.get(s.doc_id, []))]


def authenticated(flow: Workflow, mail: Incoming) -> tuple[bool, str]:
    """Whether a visit's date or outcome is the sender's own word: a
    trusted receiving server says DMARC or DKIM passed (its word decides
    when it is there), or, when none says anything, the mail answers a
    visit-request notice sent to this address, which carried their signed
    reference (as commands.py, but with no time limit: an outcome may
    come months after the request)."""
    block = authres.block_of(mail, flow.config.security.authserv_ids)
    if block:
        return authres.verdict(block, mail.sender.email)
    if authres.answered(flow.store, flow.tokens, mail,
                        kind="visit-request") is not None:
        return True, "answers the visit-request notice sent to them"
    return False, ("no trusted server vouches for it, and it answers no "
                   "visit-request notice sent to this address")


def outcome_of(text: str) -> str:
    """AWARDED, NOT_YET or "" for what a validator wrote."""
    if _NOT_YET.search(text):
        return NOT_YET
    if _AWARDED.search(text) and not _CONDITIONAL.search(text):
        return AWARDED
    return ""


def on_visit_reply(flow: Workflow, mail: Incoming, understood: Understanding
                   ) -> Outcome:
    assert understood.school_id is not None
    school = flow.store.school(understood.school_id)
    ok, why = authenticated(flow, mail)
    if not ok:
        return Outcome(SET_ASIDE, VISIT_REPLY,
                       f"about {school['name']}'s visit, but not "
                       f"authenticated: {why}", school["cluster_id"],
                       school.doc_id)
    validator = (flow.store.cluster(school["cluster_id"]).get("validator")
                 or {}).get("email")
    sender = mail.sender.email
    if validator and sender != validator and sender not in flow.config.staff:
        # A validator replaced since the notice went to them: the visit is
        # the new one's now, and staff decide what the old word is worth.
        return Outcome(SET_ASIDE, VISIT_REPLY,
                       f"about {school['name']}'s visit, from {sender}, who "
                       f"is no longer the cluster's validator ({validator} "
                       "is)", school["cluster_id"], school.doc_id)
    text = new_text_of(mail).strip()
    result = outcome_of(f"{mail.subject}\n{text}")
    # The visit's day is the UK's "today", not UTC's (00:00-01:00 BST).
    when = visitdate.parse(text, flow.clock.now().astimezone(UK).date())
    if result and school["status"] in (AWARDED, ALREADY_AWARDED):
        # An outcome is recorded once: a later word in the thread
        # ("the certificate is not yet printed", "awarded, as I said")
        # neither congratulates again nor takes the award away.
        return Outcome(SET_ASIDE, VISIT_REPLY,
                       f"about {school['name']}'s visit, but the school is "
                       "already a Digital School", school["cluster_id"],
                       school.doc_id)
    if result and when.day is not None \
            and not _held(text, flow.clock.now().astimezone(UK).date()):
        # "4 March at 10am; I have not yet met the head": a date and
        # words of an outcome. Not guessed: a person reads it.
        said = visitdate.shown(when.stamp()) if when.found else when.problem
        return Outcome(SET_ASIDE, VISIT_REPLY,
                       f"about {school['name']}'s visit: reads both as a "
                       f"visit date ({said}) and as an outcome ({result})",
                       school["cluster_id"], school.doc_id)
    if result:
        return _outcome(flow, mail, school, result, text)
    if when.found:
        return _visit_date(flow, mail, school, when)
    if when.problem:
        flow.store.add_event(flow.clock.now(), "visit-date-unclear",
                             school_id=school.doc_id,
                             cluster_id=school["cluster_id"],
                             message_id=mail.message_id, detail=when.problem)
        flow.queue(Draft(
            key=f"visit-date-query:{mail.ref}", kind="visit-date-query",
            template="visit-date-query", to=(mail.sender.email,),
            reply_to_id=mail.message_id, references=mail.references,
            cluster_id=school["cluster_id"], school_id=school.doc_id,
            reference=flow.tokens.for_person(mail.sender.email),
            context={"recipient_name": _name_of(flow, mail.sender.email),
                     "school": school_view(flow.store, school),
                     "problem": when.problem}))
        return Outcome(HANDLED, VISIT_REPLY,
                       f"visit date for {school['name']} unclear "
                       f"({when.problem}); asked again",
                       school["cluster_id"], school.doc_id)
    return Outcome(SET_ASIDE, VISIT_REPLY,
                   f"about {school['name']}'s visit, with no date or "
                   "outcome mailbot can read", school["cluster_id"],
                   school.doc_id)


def _held(text: str, today: date) -> bool:
    """Whether the date `text` gives reads as one of the last weeks' (a
    date without a year is otherwise read as next year's): the visit
    held, named in its outcome, not a new visit date."""
    earlier = visitdate.parse(text, today - timedelta(days=60))
    return earlier.day is not None and earlier.day <= today


def _name_of(flow: Workflow, address: str) -> str | None:
    for validator in flow.config.validators:
        if validator.email.lower() == address.lower():
            return validator.name
    return None


def _visit_date(flow: Workflow, mail: Incoming, school: Document,
                when: visitdate.VisitDate) -> Outcome:
    now = flow.clock.now()
    at = when.stamp()
    before = _current_visit(school)
    if before == at:
        return Outcome(HANDLED, VISIT_REPLY,
                       f"visit to {school['name']} on {visitdate.shown(at)}, "
                       "as already recorded", school["cluster_id"],
                       school.doc_id)
    flow.store.update_school(school.doc_id, {"visit_at": at,
                                             "visit_date_set_at": stamp(now)})
    flow.store.add_event(now, "visit-date", school_id=school.doc_id,
                         cluster_id=school["cluster_id"],
                         message_id=mail.message_id,
                         detail=visitdate.shown(at)
                         + (f" (was {visitdate.shown(before)})"
                            if before and before != at else ""))
    contact = school.get("contact_email")
    if contact:
        cluster = flow.store.cluster(school["cluster_id"])
        flow.queue(Draft(
            # Keyed by the message too: a visit moved back to a date
            # it had before is news to the school again.
            key=f"visit-date:{school.doc_id}:{at}:{mail.ref}",
            kind="visit-date",
            template="visit-date", to=(str(contact),),
            cluster_id=cluster.doc_id, school_id=school.doc_id,
            context={"school": school_view(flow.store, school),
                     "cluster": cluster_view(cluster),
                     "contact_name": school.get("contact_name"),
                     "visit_at": visitdate.shown(at),
                     "changed": bool(before and before != at),
                     "validator_name": _name_of(flow, mail.sender.email)}))
    return Outcome(HANDLED, VISIT_REPLY,
                   f"visit to {school['name']} on {visitdate.shown(at)}",
                   school["cluster_id"], school.doc_id)


def _current_visit(school: Mapping[str, Any]) -> str | None:
    """The date set for the visit the school asked for last, if any: not
    the date of an earlier visit, whose outcome came or after which the
    school asked again (guards a bug: a new visit was announced as a
    change of the last one's date)."""
    at, set_at = school.get("visit_at"), str(school.get("visit_date_set_at") or "")
    later = [str(school.get(field) or "")
             for field in ("visit_outcome_at", "visit_requested_at")]
    if not at or any(stamp_ > set_at for stamp_ in later):
        return None
    return str(at)


def _outcome(flow: Workflow, mail: Incoming, school: Document, result: str,
             notes: str) -> Outcome:
    record_outcome(flow, school, result, notes, by=mail.sender.email,
                   key=mail.ref, message_id=mail.message_id)
    return Outcome(HANDLED, VISIT_REPLY,
                   f"{school['name']}: "
                   + ("Digital School status awarded" if result == AWARDED
                      else "not yet; told what to work on"),
                   school["cluster_id"], school.doc_id)


def record_outcome(flow: Workflow, school: Document, result: str, notes: str,
                   *, by: str, key: str, message_id: str) -> None:
    """A visit's outcome, from the validator's mail or a staff command:
    awarded (the school congratulated) or not yet (the school told what to
    work on with `by`'s notes, and back to self-review complete, so that
    it may send new results and ask again). `key` makes the mail sent
    once however often the same message is handled."""
    now = flow.clock.now()
    cluster = flow.store.cluster(school["cluster_id"])
    contact = str(school.get("contact_email") or "")
    notes = _excerpt(notes, NOTES_CHARS)
    # Staff record an outcome for the cluster's validator, who visited.
    validator = _name_of(flow, by) or (cluster.get("validator") or {}).get("name")
    context = {"school": school_view(flow.store, school),
               "cluster": cluster_view(cluster),
               "contact_name": school.get("contact_name"),
               "validator_name": validator,
               "notes": notes, "threshold": selfreview.THRESHOLD}
    if result == AWARDED:
        flow.store.update_school(school.doc_id, {
            "status": AWARDED, "awarded_at": stamp(now),
            "visit_outcome": AWARDED, "visit_outcome_at": stamp(now),
            "visit_notes": notes})
    else:
        flow.store.update_school(school.doc_id, {
            "status": SELF_REVIEW_COMPLETE, "visit_outcome": NOT_YET,
            "visit_outcome_at": stamp(now), "visit_notes": notes})
    flow.store.add_event(now, "visit-outcome", school_id=school.doc_id,
                         cluster_id=school["cluster_id"],
                         message_id=message_id, detail=f"{result}, from {by}")
    if result == AWARDED:
        congratulate(flow, school, f"award-congratulations:{key}",
                     validator, notes)
    elif contact:
        template = "visit-not-yet-outcome"
        flow.queue(Draft(
            key=f"{template}:{key}", kind=template, template=template,
            to=(contact,), cluster_id=cluster.doc_id,
            school_id=school.doc_id, context=context))


def congratulate(flow: Workflow, school: Document, key: str,
                 validator_name: str | None = None, notes: str = "") -> bool:
    """Queue the congratulations on an award to the school's contact,
    copying the cluster's lead (when another address): for the
    validator's "awarded" and for staff's `award` command alike. False
    when the school has no contact, or `key` was queued before."""
    contact = str(school.get("contact_email") or "")
    if not contact:
        return False
    cluster = flow.store.cluster(school["cluster_id"])
    lead = str((cluster.get("lead") or {}).get("email") or "")
    template = "award-congratulations"
    return flow.queue(Draft(
        key=key, kind=template, template=template, to=(contact,),
        cc=(lead,) if lead and lead != contact else (),
        cluster_id=cluster.doc_id, school_id=school.doc_id,
        context={"school": school_view(flow.store, school),
                 "cluster": cluster_view(cluster),
                 "contact_name": school.get("contact_name"),
                 "validator_name": validator_name,
                 "notes": notes, "threshold": selfreview.THRESHOLD}))


def _excerpt(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(None, 1)[0] + " [...]"


# -- the export --------------------------------------------------------------

def export_fields(school: Document) -> dict[str, Any]:
    """What `mailbot export` shows of results, visits and outcomes."""
    return {
        "self_review": school.get("self_review"),
        "visit_requested_at": school.get("visit_requested_at"),
        "visit_at": school.get("visit_at"),
        "visit_outcome": school.get("visit_outcome"),
        "visit_outcome_at": school.get("visit_outcome_at"),
        "visit_notes": school.get("visit_notes"),
        "awarded_at": school.get("awarded_at"),
    }
