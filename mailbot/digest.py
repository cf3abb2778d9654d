"""The staff digest: what is new, what is stuck, what needs a person."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from mailbot.compose import UK, long_date
from mailbot.setaside import short_id
from mailbot.store import (
    AWAITING_VALIDATOR,
    COMPLETE_STATUSES,
    INCOMPLETE,
    INVITED,
    Store,
)


def context(store: Store, now: datetime, since: str | None) -> dict[str, Any]:
    """Everything the digest template shows, as sections of short lines."""
    after = since or ""
    today = now.astimezone(UK).date()
    clusters = {c.doc_id: c for c in store.all_clusters()}
    schools = store.all_schools()

    def cluster_name(cluster_id: int) -> str:
        return str(clusters[cluster_id].get("name") or "(no name yet)")

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
                for s in schools for c in s.get("comments", [])
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
    aside = [f"{short_id(m['key'])} {m.get('from')}: \"{m.get('subject')}\" "
             f"({m.get('reason')})"
             for m in store.set_aside_messages()
             if m.get("received_at", "") > after]
    limited = sorted({e["detail"] for e in store.reply_limited_since(after)})
    failed = [f"{o['kind']} to {', '.join(o['to'])}: {o.get('error')}"
              for o in store.failed_outgoing()
              if o.get("sent_at", "") > after]

    sections = [
        ("New clusters", "No new clusters.", new),
        ("Nominations waiting for details", "None.", incomplete),
        ("Comments received", "No new comments.", comments),
        ("Schools overdue with the self-review", "None.", overdue),
        ("Clusters waiting for a validator", "None.", waiting),
        ("Validators assigned", "None since the last digest.", given),
        ("Undeliverable addresses", "None.", bounced),
        ("Mail that could not be sent", "None.", failed),
        ("Addresses not answered again today (too many replies; a robot?)",
         "None.", limited),
        ("Mail set aside for a person (mailbot set-aside show ID)",
         "Nothing new.", aside),
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
        "sections": [{"title": t, "empty": e, "items": items}
                     for t, e, items in sections],
    }


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"
