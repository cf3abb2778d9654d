"""What falls due with time: reminders, waiting validators, the digest,
and, once a day, removing copies of mail older than privacy.keep_raw_days.

The sweep runs on its own schedule and after every poll. It only queues
mail; delivery sends it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from tinydb.table import Document

from mailbot import digest, privacy, progress
from mailbot.compose import UK, Draft
from mailbot.rules import Reminder
from mailbot.sources import MailSource
from mailbot.store import ACTIVE, AWAITING_VALIDATOR, INVITED, stamp
from mailbot.views import cluster_label, cluster_view, school_view
from mailbot.workflow import Workflow

log = logging.getLogger(__name__)


def sweep(flow: Workflow, mailbox: MailSource | None = None) -> None:
    """Queue what has fallen due, committing cluster by cluster so that
    one cluster's trouble holds up no other; then, once a day, remove
    copies of mail kept longer than the privacy settings allow (in
    `mailbox` too, when given)."""
    store = flow.store
    for cluster in store.all_clusters():
        with store.attempt("reminders and validator for "
                           f"{cluster_label(cluster)}", flow.clock.now()):
            if cluster["status"] == ACTIVE:
                for school in store.schools_of(cluster.doc_id):
                    if school["status"] == INVITED:
                        remind(flow, cluster, school)
            if cluster["status"] in (ACTIVE, AWAITING_VALIDATOR):
                flow.assign_validator_if_ready(cluster.doc_id)
    send_digest_if_due(flow)
    store.commit()
    # progress.py: reports at 3, 6 and 9 months, digests, stall nudges.
    progress.sweep(flow)
    try:
        # After the digest, which has listed every set-aside message.
        privacy.retain_if_due(store, flow.config, flow.clock, mailbox)
    except Exception:
        store.rollback()
        log.exception("removing old copies of mail failed")


def due_at(reminder: Reminder, invited_at: datetime, deadline: date) -> datetime:
    """When a reminder falls due, before working hours are applied."""
    if reminder.after_invitation_days is not None:
        return invited_at + timedelta(days=reminder.after_invitation_days)
    if reminder.before_deadline_days is not None:
        day = deadline - timedelta(days=reminder.before_deadline_days)
    else:
        day = deadline + timedelta(days=reminder.after_deadline_days or 0)
    return datetime.combine(day, time(0, 0), UK)


def remind(flow: Workflow, cluster: Document, school: Document) -> None:
    """Queue the latest reminder that has fallen due and was not yet sent."""
    now = flow.clock.now()
    council = cluster.get("local_authority")
    if not flow.hours.is_working(now, council):
        return
    invited_at = datetime.fromisoformat(school["invited_at"])
    deadline = date.fromisoformat(school["deadline"])
    done = set(school.get("reminders", []))
    due = [r for r in flow.rules.reminders
           if r.name not in done and due_at(r, invited_at, deadline) <= now]
    if not due:
        return

    # After a holiday several may be due at once; only the latest is worth
    # sending, and the others are passed over for good.
    latest = max(due, key=lambda r: due_at(r, invited_at, deadline))
    flow.store.update_school(school.doc_id, {
        "reminders": [*school.get("reminders", []), *(r.name for r in due)]})
    lead = str(cluster["lead"]["email"])
    copy_lead = latest.copy_lead and lead != school["contact_email"]
    days_left = (deadline - now.astimezone(UK).date()).days
    flow.queue(Draft(
        key=f"reminder:{school.doc_id}:{latest.name}:{school['invited_at']}",
        kind="reminder", template="reminder", to=(school["contact_email"],),
        cc=(lead,) if copy_lead else (), cluster_id=cluster.doc_id,
        school_id=school.doc_id,
        context={"school": school_view(flow.store, school),
                 "cluster": cluster_view(cluster),
                 "deadline": deadline, "reminder_name": latest.name,
                 "days_left": days_left, "overdue": days_left < 0,
                 "lead_copied": copy_lead}))
    passed = [r.name for r in due if r is not latest]
    flow.store.add_event(now, "reminder", school_id=school.doc_id,
                         cluster_id=cluster.doc_id,
                         detail=latest.name + (f" (passed over: {', '.join(passed)})"
                                               if passed else ""))


def send_digest_if_due(flow: Workflow) -> bool:
    now = flow.clock.now()
    local = now.astimezone(UK)
    schedule = flow.config.schedule
    if schedule.digest_weekdays_only and (
            local.weekday() >= 5 or flow.hours.public_holiday(local.date())):
        return False
    if local.time() < schedule.digest_time:
        return False
    today = local.date().isoformat()
    if flow.store.get_meta("digest_day") == today:
        return False
    since = flow.store.get_meta("digest_at")
    flow.queue(Draft(
        key=f"digest:{today}", kind="digest", template="digest",
        to=flow.config.staff, context=digest.context(flow.store, now, since)))
    flow.store.set_meta("digest_day", today)
    flow.store.set_meta("digest_at", stamp(now))
    log.info("digest queued for %s", ", ".join(flow.config.staff))
    return True
