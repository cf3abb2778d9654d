"""Keeping watch on the poll: staff hear once when the mailbox stays unread.

The pipeline notes each successful poll ("last_poll" in the record's
meta); this module notes when the current run of failures began. Once
failures have lasted longer than `schedule.poll_alert_minutes`, one alert
goes to staff, keyed by that beginning, so one run of failures gives one
alert however long it lasts. It is logged at ERROR too, since mail may
not get out when the whole network is down.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from mailbot.compose import Draft
from mailbot.delivery import deliver_pending
from mailbot.senders import Sender
from mailbot.store import stamp
from mailbot.workflow import Workflow

log = logging.getLogger(__name__)

FAILING_SINCE = "poll_failing_since"
LAST_POLL = "last_poll"


def after_poll(flow: Workflow, sender: Sender,
               failure: BaseException | None) -> None:
    """Note how a poll went; alert staff or log the recovery as due."""
    if failure is None:
        _succeeded(flow)
    else:
        _failed(flow, sender, failure)


def _succeeded(flow: Workflow) -> None:
    store = flow.store
    since = store.get_meta(FAILING_SINCE)
    if not since:
        return
    store.set_meta(FAILING_SINCE, None)
    store.commit()
    log.info("polling works again after failing for %d minutes (since %s)",
             _minutes(since, flow.clock.now()), since)


def _failed(flow: Workflow, sender: Sender, failure: BaseException) -> None:
    store, now = flow.store, flow.clock.now()
    since = store.get_meta(FAILING_SINCE)
    if not since:
        since = stamp(now)
        store.set_meta(FAILING_SINCE, since)
        store.commit()

    limit = flow.config.schedule.poll_alert_minutes
    if now - datetime.fromisoformat(since) <= timedelta(minutes=limit):
        return
    minutes = _minutes(since, now)
    mailbox = flow.config.mailbox
    where = (f"{mailbox.host}:{mailbox.port}" if mailbox.kind == "imap"
             else str(mailbox.path))
    queued = flow.queue(Draft(
        key=f"alert:poll:{since}", kind="alert", template="alert",
        to=flow.config.staff,
        context={"mailbox": where, "failing_since": since,
                 "minutes": minutes, "alert_minutes": limit,
                 "last_poll": store.get_meta(LAST_POLL),
                 "error": str(failure) or type(failure).__name__}))
    if not queued:
        return
    store.commit()
    log.error("polling has failed for %d minutes (since %s, last success "
              "%s): %s; alerting %s", minutes, since,
              store.get_meta(LAST_POLL) or "never", failure,
              ", ".join(flow.config.staff))
    deliver_pending(store, sender, flow.clock, flow.config.programme_people)


def _minutes(since: str, now: datetime) -> int:
    return int((now - datetime.fromisoformat(since)).total_seconds() // 60)
