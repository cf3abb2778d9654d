"""The 3 to 9 month goal: where each cluster stands, and who is told.

Every school in a cluster should be a Digital School within nine months
of the cluster's start. From the sweep (in working hours only) this
module queues, each at most once (every draft is keyed):

- a progress report at 3, 6 and 9 months from the start, to the lead
  contact, the validator (when one is assigned) and staff;
- a weekly digest for each validator of their open clusters (on the
  first working day of the week), and a monthly summary of the clusters
  in their area for each council contact and for Education Scotland (on
  the first working day of the month); a cluster appears from the first
  week or month that begins after it started (for a validator: after
  they were assigned), so nobody gets a summary the day a cluster joins;
- a kind nudge to a school that has stalled, once per stall period, and
  one notice per cluster per period to its lead contact and validator
  listing the stalled schools.

It also answers "where do we stand?" by return (`where_we_stand`).

The rules, stated once:

- start: `started_at` of the cluster, set from `activated_at` (else
  `created_at`) the first time the sweep sees an enrolled cluster
  without one;
- activity: any event in a school's history except those mailbot makes
  by itself on a timer (reminders, stall nudges, reports, reply limits);
- stalled: a school still invited or with its self-review complete
  (neither awarded, nor waiting for a visit it asked for) with no
  activity for `[progress] stalled_after_days` (rules/programme.toml);
  the period is counted from its last activity, so a school silent for
  twice that long is nudged twice;
- forecast: linear from the awards made since the start (schools that
  were already Digital Schools at nomination are done, but are not
  pace): the remaining schools at the same number of days per award.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from tinydb.table import Document

from mailbot import visitdate
from mailbot.classify import WHERE_WE_STAND, Understanding
from mailbot.compose import UK, Draft, long_date
from mailbot.mail import Incoming
from mailbot.outcome import HANDLED, Outcome
from mailbot.quoting import new_text_of
from mailbot.results import NOT_YET, short_of
from mailbot.selfreview import THRESHOLD, Criterion
from mailbot.selfreview import criterion as criterion_of
from mailbot.store import (
    ALREADY_AWARDED,
    AWARDED,
    COMPLETE_STATUSES,
    INCOMPLETE,
    INVITED,
    SELF_REVIEW_COMPLETE,
    VISIT_REQUESTED,
    Store,
    stamp,
)
from mailbot.supports import ACCEPTED, PROPOSED
from mailbot.views import cluster_label, cluster_view
from mailbot.workhours import WorkingTime

if TYPE_CHECKING:
    from mailbot.workflow import Workflow

log = logging.getLogger(__name__)

__all__ = ["WHERE_WE_STAND", "sweep", "where_we_stand", "cluster_summary"]

MILESTONES = (3, 6, 9)   # months from the start
GOAL_MONTHS = 9
# Events mailbot adds by itself on a timer: they are not a school's activity.
TIMER_EVENTS = frozenset({"reminder", "stall-nudge", "stall-notice",
                          "progress-report", "reply-limit"})
STALLABLE = frozenset({INVITED, SELF_REVIEW_COMPLETE})
DONE = frozenset({AWARDED, ALREADY_AWARDED})
# A "where do we stand?" longer than this many words says more than the
# question: it is also kept as the school's comment.
QUESTION_WORDS = 30

FORECAST_RULE = ("The forecast is linear: the schools still to be awarded, "
                 "at the average number of days per award since the "
                 "cluster started (schools that were already Digital "
                 "Schools count as done, not as pace).")

_STATUS_WORDS = {
    INVITED: "invited, self-review not yet complete",
    SELF_REVIEW_COMPLETE: "self-review complete",
    VISIT_REQUESTED: "validation visit requested",
    AWARDED: "awarded Digital School status",
    ALREADY_AWARDED: "already a Digital School",
}


# -- dates -------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or the month's last day if shorter."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _moment(value: Any) -> datetime | None:
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UK)


def start_of(cluster: Document) -> datetime | None:
    """When the cluster started: `started_at`, else when it was activated
    (a record from before `started_at` existed), else when recorded."""
    return _moment(cluster.get("started_at") or cluster.get("activated_at")
                   or cluster.get("created_at"))


def ensure_started(store: Store, cluster: Document) -> None:
    if cluster.get("started_at") or cluster.get("status") == INCOMPLETE:
        return
    start = start_of(cluster)
    if start is not None:
        store.update_cluster(cluster.doc_id, {"started_at": stamp(start)})


def last_activity(store: Store, school: Document) -> datetime | None:
    times = [e["at"] for e in store.history_of_school(school.doc_id)
             if e.get("event") not in TIMER_EVENTS and e.get("at")]
    if school.get("invited_at"):
        times.append(school["invited_at"])
    if not times:
        return None
    return max(m for m in (_moment(t) for t in times) if m is not None)


# -- what the record says -----------------------------------------------


def criterion_name(key: Any) -> str:
    """A criterion as people write it ("Professional Development") for the
    record's key ("professional_development"), or any known way of writing
    it; a key no criterion has, with its underscores as spaces."""
    try:
        return Criterion(str(key)).full
    except ValueError:
        found = criterion_of(str(key))
        return found.full if found is not None else str(key).replace("_", " ")


def _criterion_order(key: Any) -> int:
    order = list(Criterion)
    try:
        return order.index(Criterion(str(key)))
    except ValueError:
        found = criterion_of(str(key))
        return order.index(found) if found is not None else len(order)


def _describe(value: Any) -> str:
    """Self-review results of whatever shape, in one short line, each
    criterion by its name, in the programme's order."""
    if isinstance(value, dict):
        if value.get("summary"):
            return str(value["summary"])
        percent = value.get("percent")
        if isinstance(percent, dict) and percent:
            # results.py: {"percent": {criterion: score}, "estimated": [...]}
            estimated = {str(k) for k in value.get("estimated") or ()}
            every = estimated >= {str(k) for k in percent}
            keys = sorted(percent, key=_criterion_order)
            text = ", ".join(
                f"{criterion_name(k)} {_number(percent[k])}%"
                + (" (estimated)" if str(k) in estimated and not every else "")
                for k in keys)
            if every:
                text += " (estimated from the counts of statements)"
            return text
        return "received"
    if isinstance(value, list | tuple):
        return f"{len(value)} results received"
    return str(value)


def _number(value: Any) -> str:
    try:
        return f"{float(value):.1f}".removesuffix(".0")
    except (TypeError, ValueError):
        return str(value)


def _day(value: Any) -> str:
    """A visit's day, and its time when it has one ("Thursday 4 March 2027
    at 10:00"), from its stamp; anything else as it is."""
    try:
        return visitdate.shown(str(value))
    except (TypeError, ValueError):
        return str(value)


_SUPPORT_WORDS = {
    "validator": "the validator's guidance",
    "council": "the council",
    "education scotland": "Education Scotland",
}


def supports_status(cluster: Mapping[str, Any]) -> str | None:
    """Where the matrix of supports (supports.py) stands: "accepted" once
    the validator has accepted it, "proposed" while it waits for them,
    else None."""
    record = cluster.get("support_proposal")
    if not isinstance(record, Mapping):
        return None
    status = record.get("status")
    return str(status) if status in (PROPOSED, ACCEPTED) else None


def mentors(store: Store, cluster: Document,
            school_id: int | None = None) -> list[str]:
    """The matrix of supports (supports.py's `ties` and `fallbacks`) in
    words, by school name: for one school, who mentors it and in which
    criterion, whom it mentors, and the other supports for its gaps; for
    the whole cluster (no school), all of them. Empty with no proposal."""
    if supports_status(cluster) is None:
        return []
    record = cluster["support_proposal"]
    names: dict[int, str] = {}

    def name(doc_id: Any) -> str:
        try:
            key = int(doc_id)
        except (TypeError, ValueError):
            return str(doc_id)
        if key not in names:
            try:
                names[key] = str(store.school(key)["name"])
            except KeyError:
                names[key] = f"school {key}"
        return names[key]

    def order(entry: Mapping[str, Any]) -> int:
        return _criterion_order(entry.get("criterion"))

    ties = sorted((t for t in record.get("ties") or () if isinstance(t, Mapping)),
                  key=order)
    fallbacks = sorted((f for f in record.get("fallbacks") or ()
                        if isinstance(f, Mapping)), key=order)

    def tie(t: Mapping[str, Any]) -> str:
        outside = ("" if t.get("in_cluster", True)
                   else " (a Digital School outside the cluster)")
        return (f"{name(t.get('mentor'))}{outside} mentors "
                f"{name(t.get('mentee'))} in {criterion_name(t.get('criterion'))}")

    def other(f: Mapping[str, Any]) -> str:
        support = str(f.get("support") or "")
        words = _SUPPORT_WORDS.get(support.lower(), support)
        return (f"{name(f.get('school'))} is supported in "
                f"{criterion_name(f.get('criterion'))} by {words}")

    if school_id is None:
        members = [s.doc_id for s in store.schools_of(cluster.doc_id)]

        def place(doc_id: Any) -> int:
            return members.index(doc_id) if doc_id in members else len(members)

        return ([tie(t) for t in sorted(ties, key=lambda t: place(t.get("mentee")))]
                + [other(f) for f in sorted(fallbacks,
                                            key=lambda f: place(f.get("school")))])
    return ([tie(t) for t in ties if t.get("mentee") == school_id]
            + [tie(t) for t in ties if t.get("mentor") == school_id]
            + [other(f) for f in fallbacks if f.get("school") == school_id])


def _current_visit(school: Mapping[str, Any]) -> str | None:
    """The date of the visit the school's latest request is for: none
    when the date on record was set before that request (a visit before
    a "not yet", say)."""
    at = school.get("visit_at")
    if not at:
        return None
    requested = _moment(school.get("visit_requested_at"))
    set_at = _moment(school.get("visit_date_set_at"))
    if requested is not None and set_at is not None and set_at < requested:
        return None
    return str(at)


def _not_yet(school: Mapping[str, Any]) -> bool:
    """Whether the validator's last word on the school was "not yet", and
    it has not asked for another visit since."""
    if school.get("visit_outcome") != NOT_YET \
            or school.get("status") != SELF_REVIEW_COMPLETE:
        return False
    outcome_at = _moment(school.get("visit_outcome_at"))
    requested = _moment(school.get("visit_requested_at"))
    return outcome_at is None or requested is None or requested <= outcome_at


def _names(criteria: list[Criterion]) -> str:
    names = [c.full for c in criteria]
    return names[0] if len(names) == 1 else (
        ", ".join(names[:-1]) + " and " + names[-1])


def _visit_steps(school: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The validation visit, as it stands for the school now."""
    status = school.get("status")
    results = school.get("self_review")
    visit = _current_visit(school)
    visit_moment = _moment(visit)
    if visit and visit_moment is not None and "T" not in visit:
        visit_moment += timedelta(days=1)   # a day without a time: all of it
    if status == AWARDED:
        return ([{"done": True, "text": f"Validation visit on {_day(visit)}"}]
                if visit else [])
    if status == VISIT_REQUESTED:
        requested = (f" on {long_date(school['visit_requested_at'])}"
                     if school.get("visit_requested_at") else "")
        if visit and visit_moment is not None and visit_moment > now:
            return [{"done": True, "text": f"Validation visit requested{requested}"},
                    {"done": False, "text": f"Validation visit on {_day(visit)}"}]
        if visit:
            return [{"done": True, "text": f"Validation visit on {_day(visit)}; "
                     "the validator's decision is to follow"}]
        return [{"done": True, "text": f"Validation visit requested{requested}"},
                {"done": False, "text": "Validation visit: the validator will "
                 "arrange a date"}]
    if status == INVITED:
        return [{"done": False, "text": "Ask for a validation visit, once the "
                 f"self-review is complete and reaches {THRESHOLD}% in every "
                 "criterion"}]
    steps: list[dict[str, Any]] = []
    again = ""
    if _not_yet(school):
        again = " again"
        visited = (f" on {_day(school['visit_at'])}" if school.get("visit_at")
                   else "")
        steps.append({"done": True, "text": (
            f"Validation visit{visited}: not yet awarded; the validator's "
            "notes say what to work on")})
        review = results if isinstance(results, Mapping) else {}
        outcome_at = _moment(school.get("visit_outcome_at"))
        received = _moment(review.get("received_at"))
        if outcome_at is not None and (received is None or received <= outcome_at):
            steps.append({"done": False, "text": (
                "Send updated self-review results, then ask for a validation "
                "visit again")})
            return steps
    short = short_of(results) if results else []
    if not results:
        steps.append({"done": False, "text": (
            f"Ask for a validation visit{again} when you are ready; send your "
            "self-review results with it, so that the validator has them")})
    elif short:
        steps.append({"done": False, "text": (
            f"Reach {THRESHOLD}% in {_names(short)}, send the updated "
            f"results, then ask for a validation visit{again}")})
    else:
        steps.append({"done": False, "text": (
            f"Ask for a validation visit{again}: your results reach "
            f"{THRESHOLD}% in every criterion")})
    return steps


def school_summary(store: Store, school: Document, now: datetime,
                   stalled_after_days: int, goal: date | None
                   ) -> dict[str, Any]:
    status = str(school.get("status"))
    last = last_activity(store, school)
    quiet = (now - last).days if last else 0
    stalled = status in STALLABLE and quiet >= stalled_after_days
    results = school.get("self_review")
    notes = [_STATUS_WORDS.get(status, status.replace("_", " "))]
    if results:
        notes.append(f"results: {_describe(results)}")
    if _not_yet(school):
        notes.append("not yet awarded after its validation visit"
                     + (f" on {_day(school['visit_at'])}"
                        if school.get("visit_at") else ""))
    elif _current_visit(school) and status in (VISIT_REQUESTED, AWARDED):
        notes.append(f"visit on {_day(school['visit_at'])}")
    if status == AWARDED and school.get("awarded_at"):
        notes.append(f"awarded on {long_date(school['awarded_at'])}")
    if stalled:
        notes.append(f"nothing new for {quiet} days")

    checklist = [{"done": True, "text": "Invited to the programme"
                  + (f" on {long_date(school['invited_at'])}"
                     if school.get("invited_at") else "")}]
    reviewed = status in COMPLETE_STATUSES
    if status == ALREADY_AWARDED:
        checklist.append({"done": True, "text": "Already a Digital School: "
                          "nothing more is needed"})
    else:
        checklist.append({"done": reviewed, "text": (
            "Self-review complete" + (f" on {long_date(school['completed_at'])}"
                                      if school.get("completed_at") else "")
            if reviewed else "Complete the self-review" + (
                f", due by {long_date(school['deadline'])}"
                if school.get("deadline") else ""))})
        received = (results.get("received_at")
                    if isinstance(results, Mapping) else None)
        checklist.append({"done": bool(results), "text": (
            "Self-review results received"
            + (f" on {long_date(received)}" if received else "")
            + f" ({_describe(results)})"
            if results else "Self-review results: not yet received")})
        checklist += _visit_steps(school, now)
        checklist.append({"done": status == AWARDED, "text": (
            "Digital School status awarded" + (
                f" on {long_date(school['awarded_at'])}"
                if school.get("awarded_at") else "")
            if status == AWARDED else _goal_step(goal, now))})
    return {
        "name": school["name"],
        "status": status,
        "contact_name": school.get("contact_name"),
        "contact_email": school.get("contact_email"),
        "line": f"{school['name']}: " + "; ".join(notes),
        "stalled": stalled,
        "quiet_days": quiet,
        "checklist": checklist,
    }


def _goal_step(goal: date | None, now: datetime) -> str:
    if goal is None:
        return "Digital School status, to be reached"
    if goal < now.astimezone(UK).date():
        return ("Digital School status, still to be reached: the nine-month "
                f"goal was {long_date(goal)}")
    return f"Digital School status, to be reached by {long_date(goal)}"


def working_day(hours: WorkingTime | None, day: date,
                council: str | None = None) -> date:
    """`day`, or the next day after it that is a working day for the
    council's schools (workhours.py: not a weekend, a public holiday or a
    school closure); `day` itself without the working hours."""
    if hours is None:
        return day
    zone = hours.hours.timezone
    try:
        moment = hours.next_working(datetime.combine(day, time(0), zone), council)
    except ValueError:
        return day
    return moment.astimezone(zone).date()


def forecast(start: datetime | None, now: datetime, awarded_since: int,
             remaining: int, goal: date | None, hours: WorkingTime | None = None,
             council: str | None = None, last: str | None = None) -> str:
    """The forecast in a sentence: `remaining` schools at the pace so far,
    on a working day for the council (`hours`); `last` names the one
    school left, when only one is."""
    if remaining == 0:
        return "Every school is a Digital School: the cluster is complete."
    if start is None or awarded_since == 0:
        return ("Not enough progress to forecast: no school has been "
                "awarded since the cluster started.")
    days = max((now - start).total_seconds() / 86400, 1.0)
    per_award = days / awarded_since
    when = (now + timedelta(days=per_award * remaining)).astimezone(UK).date()
    when = working_day(hours, when, council)
    verdict = ""
    if goal is not None:
        verdict = (", within the nine months" if when <= goal
                   else f", after the nine-month goal of {long_date(goal)}")
    if remaining == 1:
        who = f"{last}, the one school still to be awarded," if last else \
            "the one remaining school"
    else:
        who = f"the last of the {remaining} remaining schools"
    return (f"At the pace so far ({awarded_since} awarded in {int(days)} "
            f"{'day' if int(days) == 1 else 'days'}), {who} would be "
            f"awarded around {long_date(when)}{verdict}.")


def cluster_summary(store: Store, cluster: Document, now: datetime,
                    stalled_after_days: int, hours: WorkingTime | None = None
                    ) -> dict[str, Any]:
    """Everything a report, digest or checklist shows about one cluster;
    with `hours`, the forecast falls on a working day."""
    start = start_of(cluster)
    goal = add_months(start.astimezone(UK).date(), GOAL_MONTHS) if start else None
    schools = store.schools_of(cluster.doc_id)
    rows = [school_summary(store, s, now, stalled_after_days, goal)
            for s in schools]
    done = sum(1 for s in schools if s["status"] in DONE)
    awarded_since = sum(1 for s in schools if s["status"] == AWARDED)
    left = [str(s["name"]) for s in schools if s["status"] not in DONE]
    total = len(schools)
    validator = cluster.get("validator")
    council = cluster.get("local_authority")
    return {
        "cluster": cluster_view(cluster),
        "started": long_date(start) if start else "not recorded",
        "goal": long_date(goal) if goal else "not known",
        "goal_passed": goal is not None and goal < now.astimezone(UK).date(),
        "schools": rows,
        "done": done,
        "total": total,
        "share": round(100 * done / total) if total else 0,
        "stalled": [r["name"] for r in rows if r["stalled"]],
        "forecast": forecast(start, now, awarded_since, total - done, goal,
                             hours, str(council) if council else None,
                             left[0] if len(left) == 1 else None),
        "forecast_rule": FORECAST_RULE,
        "validator": dict(validator) if validator else None,
        "mentors": mentors(store, cluster),
        "supports_status": supports_status(cluster),
    }


# -- the sweep ----------------------------------------------------------


def sweep(flow: Workflow) -> None:
    """Queue what the goal needs now; one cluster's trouble holds up no
    other. Called by sweep.sweep after its own work is committed."""
    store = flow.store
    now = flow.clock.now()
    for cluster in store.all_clusters():
        if cluster.get("status") == INCOMPLETE:
            continue
        with store.attempt(f"progress reports for {cluster_label(cluster)}",
                           now):
            ensure_started(store, cluster)
            cluster = store.cluster(cluster.doc_id)
            if flow.hours.is_working(now, cluster.get("local_authority")):
                report_if_due(flow, cluster, now)
                nudge_stalled(flow, cluster, now)
    for step, what in ((validator_digests, "validators' digests"),
                       (area_summaries, "area summaries")):
        with store.attempt(what, now):
            step(flow, now)


def report_if_due(flow: Workflow, cluster: Document, now: datetime) -> bool:
    """The latest 3, 6 or 9 month report that has fallen due and was not
    sent; after a long holiday, earlier ones due too are passed over."""
    start = start_of(cluster)
    if start is None:
        return False
    day = start.astimezone(UK).date()
    sent = set(cluster.get("progress_reports", []))
    due = [m for m in MILESTONES if m not in sent and datetime.combine(
        add_months(day, m), time(0), UK) <= now]
    if not due:
        return False
    months = max(due)
    flow.store.update_cluster(cluster.doc_id, {
        "progress_reports": sorted(sent | set(due))})
    summary = cluster_summary(flow.store, cluster, now,
                              flow.rules.stalled_after_days, flow.hours)
    lead = cluster.get("lead") or {}
    audiences: list[tuple[str, tuple[str, ...], str | None]] = [
        ("lead", (str(lead.get("email")),), lead.get("name"))]
    validator = cluster.get("validator")
    if validator:
        audiences.append(("validator", (validator["email"],), validator["name"]))
    audiences.append(("staff", tuple(flow.config.staff), None))
    for audience, to, name in audiences:
        flow.queue(Draft(
            key=f"progress-report:{cluster.doc_id}:{months}:{audience}",
            kind="progress-report", template="progress-report", to=to,
            cluster_id=cluster.doc_id,
            context={"recipient_name": name, "audience": audience,
                     "months": months, "cluster": summary["cluster"],
                     "summary": summary}))
    flow.store.add_event(now, "progress-report", cluster_id=cluster.doc_id,
                         detail=f"{months} months")
    return True


def nudge_stalled(flow: Workflow, cluster: Document, now: datetime) -> int:
    """A kind nudge to each newly stalled school, and one notice per
    period to the lead and the validator listing the stalled schools,
    when any was nudged since the last notice (a school that stalls after
    this period's notice is in the next one)."""
    period_days = flow.rules.stalled_after_days
    view = cluster_view(cluster)
    nudged = 0
    stalled: list[dict[str, Any]] = []
    keys: list[str] = []
    for school in flow.store.schools_of(cluster.doc_id):
        if school["status"] not in STALLABLE:
            continue
        last = last_activity(flow.store, school)
        if last is None or (now - last).days < period_days:
            continue
        quiet = (now - last).days
        stalled.append({"name": school["name"], "quiet_days": quiet,
                        "status": _STATUS_WORDS[school["status"]]})
        if school.get("undeliverable") or not school.get("contact_email"):
            continue
        period = quiet // period_days
        key = f"stall-nudge:{school.doc_id}:{stamp(last)}:{period}"
        keys.append(key)
        if flow.queue(Draft(
                key=key,
                kind="stall-nudge", template="stall-nudge",
                to=(school["contact_email"],), cluster_id=cluster.doc_id,
                school_id=school.doc_id,
                context={"contact_name": school.get("contact_name"),
                         "school": {"name": school["name"]},
                         "cluster": view, "quiet_days": quiet,
                         "self_review_done": school["status"] != INVITED,
                         "deadline": school.get("deadline")})):
            nudged += 1
            flow.store.add_event(now, "stall-nudge", school_id=school.doc_id,
                                 cluster_id=cluster.doc_id,
                                 detail=f"{quiet} days without news")
    told = list(cluster.get("stall_told", []))
    if [k for k in keys if k not in told]:
        start = start_of(cluster) or now
        period = (now - start).days // period_days
        validator = cluster.get("validator")
        lead = cluster.get("lead") or {}
        if flow.queue(Draft(
                key=f"stall-notice:{cluster.doc_id}:{period}",
                kind="stall-notice", template="stall-notice",
                to=(str(lead.get("email")),),
                cc=(validator["email"],) if validator else (),
                cluster_id=cluster.doc_id,
                context={"lead_name": lead.get("name"), "cluster": view,
                         "stalled": stalled, "days": period_days,
                         "validator": dict(validator) if validator else None})):
            flow.store.add_event(now, "stall-notice", cluster_id=cluster.doc_id,
                                 detail=", ".join(s["name"] for s in stalled))
            flow.store.update_cluster(cluster.doc_id, {
                "stall_told": [*told, *(k for k in keys if k not in told)][-500:]})
    return nudged


def _open(cluster: Document, store: Store) -> bool:
    schools = store.schools_of(cluster.doc_id)
    return cluster.get("status") != INCOMPLETE and not (
        schools and all(s["status"] in DONE for s in schools))


def validator_digests(flow: Workflow, now: datetime) -> int:
    """Each validator's weekly digest of their open clusters, on the first
    working day of the week."""
    if not flow.hours.is_working(now):
        return 0
    local = now.astimezone(UK)
    week_start = datetime.combine(
        local.date() - timedelta(days=local.weekday()), time(0), UK)
    year, week, _ = local.isocalendar()
    queued = 0
    for validator in flow.config.validators:
        key = f"validator-digest:{validator.email}:{year}-W{week:02d}"
        if flow.store.outgoing_by_key(key) is not None:
            continue  # this week's went: not worked out again every sweep
        clusters = [c for c in flow.store.all_clusters()
                    if (c.get("validator") or {}).get("email") == validator.email
                    and _open(c, flow.store)
                    and (_moment(c.get("validator_assigned_at"))
                         or week_start) < week_start]
        if not clusters:
            continue
        summaries = [cluster_summary(flow.store, c, now,
                                     flow.rules.stalled_after_days, flow.hours)
                     for c in clusters]
        if flow.queue(Draft(
                key=key, kind="progress-digest", template="progress-digest",
                to=(validator.email,),
                context={"recipient_name": validator.name, "period": "week",
                         "day": local.date(), "area": None,
                         "clusters": summaries})):
            queued += 1
    return queued


def area_summaries(flow: Workflow, now: datetime) -> int:
    """Each council contact's monthly summary of the clusters in its area,
    and Education Scotland's of every cluster, on the first working day
    of the month."""
    local = now.astimezone(UK)
    month_start = datetime.combine(local.date().replace(day=1), time(0), UK)
    month = f"{local.year}-{local.month:02d}"
    started = [c for c in flow.store.all_clusters()
               if c.get("status") != INCOMPLETE
               and (start_of(c) or month_start) < month_start]
    recipients: list[tuple[str, Any, str | None, list[Document]]] = [
        (f"council:{council}", contact, council,
         [c for c in started if c.get("local_authority") == council])
        for council, contact in sorted(flow.config.councils.items())]
    recipients.append(("education-scotland", flow.config.education_scotland,
                       None, started))
    queued = 0
    for who, contact, council, clusters in recipients:
        key = f"area-summary:{who}:{month}"
        if not clusters or not flow.hours.is_working(now, council) \
                or flow.store.outgoing_by_key(key) is not None:
            continue  # this month's went: not worked out again every sweep
        summaries = [cluster_summary(flow.store, c, now,
                                     flow.rules.stalled_after_days, flow.hours)
                     for c in clusters]
        if flow.queue(Draft(
                key=key, kind="progress-digest",
                template="progress-digest", to=(contact.email,),
                context={"recipient_name": contact.name, "period": "month",
                         "day": local.date(), "area": council or "Scotland",
                         "clusters": summaries})):
            queued += 1
    return queued


# -- "where do we stand?" -------------------------------------------------


def where_we_stand(flow: Workflow, mail: Incoming,
                   understood: Understanding) -> Outcome:
    """The sender's checklist by return: their school's, or for a lead
    contact writing outside a school's thread, the whole cluster's.

    A question only is answered, not stored as a comment; a longer
    message that also asks (more than QUESTION_WORDS words) is kept as
    the school's comment too, and the answer says so."""
    assert understood.cluster_id is not None
    store = flow.store
    now = flow.clock.now()
    cluster = store.cluster(understood.cluster_id)
    summary = cluster_summary(store, cluster, now, flow.rules.stalled_after_days,
                              flow.hours)
    text = new_text_of(mail).strip()
    kept = False
    school = None
    if understood.school_id is not None:
        school = store.school(understood.school_id)
        summary["schools"] = [r for r in summary["schools"]
                              if r["name"] == school["name"]]
        summary["mentors"] = mentors(store, cluster, school.doc_id)
        kept = len(text.split()) > QUESTION_WORDS \
            and flow.keep_comment(mail, school)
    store.add_event(now, "where-we-stand",
                    school_id=school.doc_id if school else None,
                    cluster_id=cluster.doc_id, message_id=mail.message_id,
                    detail=mail.sender.email)
    lead = cluster.get("lead") or {}
    name = (school.get("contact_name") if school else lead.get("name")) \
        or mail.sender.name or None
    queued = flow.queue(Draft(
        key=f"where-we-stand:{mail.ref}", kind="where-we-stand",
        template="where-we-stand", to=(mail.sender.email,),
        reply_to_id=mail.message_id, references=mail.references,
        cluster_id=cluster.doc_id,
        school_id=school.doc_id if school else None,
        context={"recipient_name": name, "cluster": summary["cluster"],
                 "summary": summary, "whole_cluster": school is None,
                 "comment_kept": kept}))
    about = school["name"] if school else f"the cluster {cluster.get('name')}"
    return Outcome(HANDLED, WHERE_WE_STAND,
                   f"checklist for {about}" + ("" if queued else
                                               " not sent (already answered "
                                               "or reply limit)"),
                   cluster.doc_id, school.doc_id if school else None)


# -- examples for `check-config` (mailbot/examples.py) ---------------------


def example_contexts(cluster: dict[str, Any], validator: dict[str, Any]
                     ) -> dict[str, dict[str, Any]]:
    checklist = [
        {"done": True, "text": "Invited to the programme on Tuesday 12 "
                               "January 2027"},
        {"done": False, "text": "Complete the self-review, due by Tuesday "
                                "26 January 2027"},
        {"done": False, "text": "Digital School status, to be reached by "
                                "Monday 11 October 2027"}]
    row = {"name": "Kirkton Primary School", "status": INVITED,
           "contact_name": "Fiona Baird",
           "contact_email": "head@kirkton.example.org",
           "line": "Kirkton Primary School: invited, self-review not yet "
                   "complete; nothing new for 30 days",
           "stalled": True, "quiet_days": 30, "checklist": checklist}
    summary = {"cluster": cluster, "started": "Tuesday 12 January 2027",
               "goal": "Monday 11 October 2027", "goal_passed": False,
               "schools": [row],
               "done": 1, "total": 3, "share": 33,
               "stalled": ["Kirkton Primary School"],
               "forecast": "At the pace so far (1 awarded in 90 days), the "
                           "last of the 2 remaining schools would be awarded "
                           "around Friday 18 June 2027, within the nine "
                           "months.",
               "forecast_rule": FORECAST_RULE, "validator": validator,
               "mentors": [("Glenbrae High School mentors Kirkton Primary "
                            "School in Leadership & Vision"),
                           ("Kirkton Primary School mentors Glenbrae Primary "
                            "School in School Culture"),
                           ("Kirkton Primary School is supported in "
                            "Professional Development by the validator's "
                            "guidance")],
               "supports_status": ACCEPTED}
    return {
        "progress-report": {"recipient_name": "Morag Lindsay",
                            "audience": "lead", "months": 3,
                            "cluster": cluster, "summary": summary},
        "progress-digest": {"recipient_name": "Isla Fraser", "period": "week",
                            "day": date(2027, 4, 12), "area": None,
                            "clusters": [summary]},
        "stall-nudge": {"contact_name": "Fiona Baird",
                        "school": {"name": "Kirkton Primary School"},
                        "cluster": cluster, "quiet_days": 30,
                        "self_review_done": False,
                        "deadline": "2027-01-26"},
        "stall-notice": {"lead_name": "Morag Lindsay", "cluster": cluster,
                         "stalled": [{"name": "Kirkton Primary School",
                                      "status": "invited", "quiet_days": 30}],
                         "days": 28, "validator": validator},
        "where-we-stand": {"recipient_name": "Fiona Baird", "cluster": cluster,
                           "summary": summary, "whole_cluster": False,
                           "comment_kept": False},
    }


def more_example_contexts(cluster: dict[str, Any], validator: dict[str, Any]
                          ) -> dict[str, list[dict[str, Any]]]:
    """Further contexts, for the branches example_contexts' do not take."""
    main = example_contexts(cluster, validator)
    summary = main["where-we-stand"]["summary"]
    rows = [*summary["schools"],
            {"name": "Glenbrae High School", "status": SELF_REVIEW_COMPLETE,
             "contact_name": None,
             "contact_email": "office@glenbrae.example.org",
             "line": "Glenbrae High School: self-review complete",
             "stalled": False, "quiet_days": 12,
             "checklist": [
                 {"done": True, "text": "Invited to the programme on "
                                        "Tuesday 12 January 2027"},
                 {"done": True, "text": "Self-review complete on Monday 25 "
                                        "January 2027"},
                 {"done": False, "text": "Self-review results: not yet "
                                         "received"},
                 {"done": False, "text": "Ask for a validation visit when you "
                                         "are ready; send your self-review "
                                         "results with it, so that the "
                                         "validator has them"},
                 {"done": False, "text": "Digital School status, to be "
                                         "reached by Monday 11 October 2027"}]}]
    # The whole cluster, for its lead, while the validator considers the
    # matrix of supports.
    cluster_wide = {**summary, "schools": rows, "supports_status": PROPOSED}
    # Before any validator: no matrix of supports yet.
    early = {**summary, "validator": None, "mentors": [],
             "supports_status": None}
    return {
        "progress-report": [{**main["progress-report"],
                             "recipient_name": None, "audience": "staff"}],
        "progress-digest": [{**main["progress-digest"],
                             "recipient_name": "Alasdair Reid",
                             "period": "month", "area": "Fife",
                             "day": date(2027, 5, 4)}],
        "stall-nudge": [{**main["stall-nudge"], "self_review_done": True}],
        "where-we-stand": [{**main["where-we-stand"],
                            "recipient_name": "Morag Lindsay",
                            "summary": cluster_wide, "whole_cluster": True},
                           {**main["where-we-stand"], "summary": early,
                            "comment_kept": True}],
    }
