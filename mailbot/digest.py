"""The staff digest: what is new, what is stuck, what needs a person."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from tinydb.table import Document

from mailbot.classify import ANOTHER_SCHOOL, NEW_ADDRESS
from mailbot.commands import REFUSAL_EVENTS
from mailbot.compose import UK, long_date, long_time, without_tags
from mailbot.setaside import short_id
from mailbot.store import (
    AWAITING_VALIDATOR,
    COMPLETE_STATUSES,
    INCOMPLETE,
    INVITED,
    Store,
    stamp,
)

# Lines shown of one section: past them, one line says where the rest are
# (a first digest after months of set-aside mail would run to hundreds).
MAX_ITEMS = 50
ASIDE_TITLE = "Mail set aside for a person (mailbot set-aside show ID)"


def context(store: Store, now: datetime, since: str | None) -> dict[str, Any]:
    """Everything the digest template shows, as sections of short lines."""
    after = since or ""
    today = now.astimezone(UK).date()
    clusters = {c.doc_id: c for c in store.all_clusters()}
    schools = store.all_schools()

    def cluster_name(cluster_id: int) -> str:
        cluster = clusters.get(cluster_id)
        if cluster is None:  # a record edited by hand: shown, not a crash
            return f"cluster #{cluster_id}, not in the record"
        return str(cluster.get("name") or "(no name yet)")

    new = [f"{c['name']} ({c['local_authority']}): "
           f"{len(store.schools_of(c.doc_id))} schools, lead "
           f"{c['lead'].get('name') or ''} <{c['lead'].get('email')}>"
           for c in clusters.values()
           if c.get("activated_at", "") > after and c["status"] != INCOMPLETE]
    incomplete = [f"{c.get('name') or '(no name yet)'} from "
                  f"{c['lead'].get('email')}: missing "
                  + "; ".join(c.get("missing") or [])
                  for c in clusters.values() if c["status"] == INCOMPLETE]
    comments = [f"{s['name']} ({cluster_name(s['cluster_id'])}): "
                + _excerpt(c["text"])
                for s in schools for c in store.comments_of(s.doc_id)
                if c["received_at"] > after]
    overdue = [f"{s['name']} ({cluster_name(s['cluster_id'])}): due "
               f"{long_date(s['deadline'])}, contact {s.get('contact_email')}"
               for s in schools if s["status"] == INVITED
               and date.fromisoformat(s["deadline"]) < today]
    waiting = [f"{c['name']} ({c['local_authority']}): every school is "
               "complete but no validator in the pool may take it"
               for c in clusters.values() if c["status"] == AWAITING_VALIDATOR]
    given = [f"{c['name']}: {c['validator']['name']} "
             f"<{c['validator']['email']}>"
             for c in clusters.values() if c.get("validator")
             and c.get("validator_assigned_at", "") > after]
    bounced = [f"{a['email']} since {long_date(a['since'])}"
               for a in store.undeliverable()]
    aside = [f"{short_id(m['key'])} {m.get('from')}: "
             f"\"{without_tags(str(m.get('subject') or ''))}\" "
             f"({m.get('reason')})"
             for m in store.set_aside_messages()
             if m.get("received_at", "") > after]
    limited = sorted({e["detail"] for e in store.reply_limited_since(after)})
    # Staff commands refused, and command mail not authenticated.
    refused = [f"{long_time(e['at'])}: {e['detail']}"
               for e in store.events_of(REFUSAL_EVENTS) if e["at"] > after]
    new_addresses, other_school = _unproven(store, now, after)
    failed = [f"{o['kind']} to {', '.join(o['to'])}: {o.get('error')}"
              for o in store.failed_outgoing()
              if o.get("sent_at", "") > after]
    # Tried and not sent (refused for now, or no server to take it),
    # whenever first queued: until it goes, each digest shows it.
    retrying = [f"{o['kind']} to {', '.join(o['to'])}: tried {o['attempts']} "
                f"times, next {long_time(o['not_before'])}: {o.get('error')}"
                for o in store.unsent_outgoing() if o.get("attempts")]

    troubles = [f"{what}: failing since {long_time(t['since'])}: {t['error']}"
                for what, t in sorted(store.troubles().items())]

    sections = [
        ("Work that keeps failing (details in the log)", "None.", troubles),
        ("New clusters", "No new clusters.", new),
        ("Nominations waiting for details", "None.", incomplete),
        ("Comments received", "No new comments.", comments),
        ("Schools overdue with the self-review", "None.", overdue),
        ("Clusters waiting for a validator", "None.", waiting),
        ("Validators assigned", "None since the last digest.", given),
        ("Undeliverable addresses", "None.", bounced),
        ("Mail that could not be sent", "None.", failed),
        ("Mail not sent yet, still being tried", "None.", retrying),
        ("Addresses not answered again today (too many replies; a robot?)",
         "None.", limited),
        ("Staff commands refused (nothing was changed for these)", "None.",
         refused),
        ("New addresses waiting to be accepted (their mail changed nothing)",
         "None.", new_addresses),
        ("Refused: wrote about another school (nothing was changed)", "None.",
         other_school),
        (ASIDE_TITLE, "Nothing new.", aside),
    ]
    return {
        "day": today,
        "since": since,
        # Whether the mailbox is being read at all, before anything else.
        "last_poll": store.get_meta("last_poll"),
        "poll_failing_since": store.get_meta("poll_failing_since"),
        "counts": {"clusters": sum(1 for c in clusters.values()
                                   if c["status"] != INCOMPLETE),
                   "schools": len(schools),
                   "complete": sum(1 for s in schools
                                   if s["status"] in COMPLETE_STATUSES)},
        "sections": [{"title": t, "empty": e, "items": _at_most(
                          items, MAX_ITEMS, "mailbot set-aside list"
                          if t == ASIDE_TITLE else "mailbot export")}
                     for t, e, items in sections],
    }


def _at_most(items: list[str], limit: int, where: str) -> list[str]:
    """The first `limit` items, and a line saying which command lists the
    rest."""
    if len(items) <= limit:
        return items
    rest = (f"... and {len(items) - limit} more: `{where}` on the server "
            "lists them all")
    return [*items[:limit], rest]


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


# A new address is listed while it last wrote within this many days and
# has not been accepted; after that it is only in the school's history.
NEW_ADDRESS_DAYS = 30
# How staff accept one: the staff command by email (mailbot/commands.py).
ACCEPT_COMMAND = "accept {address} for #{school_id}"


def _unproven(store: Store, now: datetime,
              after: str) -> tuple[list[str], list[str]]:
    """Mail that would have changed a school's record without proof (see
    classify.py): new addresses at a school's domain still waiting, and
    schools' contacts who wrote about another school since `after`."""
    recent = stamp(now - timedelta(days=NEW_ADDRESS_DAYS))
    waiting: dict[tuple[int, str], list[Document]] = defaultdict(list)
    other: list[Document] = []
    for event in store.events_of((NEW_ADDRESS, ANOTHER_SCHOOL)):
        if event.get("event") == NEW_ADDRESS and event.get("school_id"):
            waiting[(event["school_id"], event["detail"])].append(event)
        elif event.get("event") == ANOTHER_SCHOOL and event["at"] > after:
            other.append(event)

    def school_of(school_id: int) -> Document | None:
        return store.schools.get(school_id)

    def seen_as(event: Document) -> str:
        message = store.message_by_id(event.get("message_id") or "")
        if message is None:
            return ""
        return (f" (\"{without_tags(str(message.get('subject') or ''))}\", "
                f"set aside as {short_id(message['key'])})")

    new_addresses = []
    for (school_id, address), events in waiting.items():
        school = school_of(school_id)
        last = max(events, key=lambda e: e["at"])
        if school is None or last["at"] < recent \
                or address in store.addresses_of(school):
            continue
        times = "" if len(events) == 1 else f" {len(events)} times, last"
        new_addresses.append(
            f"new address at {school['name']}'s domain: {address} wrote"
            f"{times} on {long_date(last['at'])}{seen_as(last)} — "
            "accept it with \""
            + ACCEPT_COMMAND.format(address=address, school_id=school_id)
            + '"')

    other_school = []
    for event in other:
        school = school_of(event["school_id"])
        sender = event["detail"]
        theirs = ", ".join(str(s["name"])
                           for s in store.schools_accepting(sender))
        other_school.append(
            f"{long_time(event['at'])}: {sender} ({theirs or 'a school'}'s "
            f"contact) wrote about "
            f"{school['name'] if school else 'a school no longer recorded'}"
            f"{seen_as(event)}")
    return new_addresses, other_school
