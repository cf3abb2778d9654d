"""The record as other tools and people read it: `export` and `status`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tinydb.table import Document

from mailbot import results
from mailbot.compose import long_time
from mailbot.setaside import short_id
from mailbot.store import Store, stamp

STATUS_LABELS = {
    "invited": "invited",
    "self_review_complete": "self-review complete",
    "visit_requested": "visit requested",
    "awarded": "awarded",
    "already_awarded": "already a Digital School",
    "incomplete": "waiting for details",
    "active": "self-review under way",
    "awaiting_validator": "waiting for a validator",
    "validator_assigned": "validator assigned",
}


def export(store: Store) -> dict[str, Any]:
    """The stable JSON shape: clusters with their schools, and mail set aside."""
    clusters = []
    for cluster in sorted(store.all_clusters(), key=lambda c: c.doc_id):
        lead = cluster.get("lead") or {}
        validator = cluster.get("validator")
        clusters.append({
            "name": cluster.get("name"),
            "local_authority": cluster.get("local_authority"),
            "status": cluster["status"],
            "lead_contact": {"name": lead.get("name"),
                             "email": _lower(lead.get("email"))},
            "validator": {"name": validator["name"],
                          "email": _lower(validator["email"])}
            if validator else None,
            "missing": cluster.get("missing") or [],
            "created_at": cluster.get("created_at"),
            "schools": [_school(store, s)
                        for s in store.schools_of(cluster.doc_id)],
        })
    set_aside = [{"id": short_id(m["key"]), "message_id": m.get("message_id"),
                  "from": _lower(m.get("from")), "subject": m.get("subject"),
                  "reason": m.get("reason"), "received_at": m.get("received_at")}
                 for m in store.set_aside_messages()]
    return {"clusters": clusters, "set_aside": set_aside}


def _school(store: Store, school: Document) -> dict[str, Any]:
    return {
        "name": school["name"],
        "phase": school.get("phase"),
        "contact_name": school.get("contact_name"),
        "contact_email": _lower(school.get("contact_email")),
        "status": school["status"],
        "invited_at": school.get("invited_at"),
        "deadline": school.get("deadline"),
        "undeliverable": bool(school.get("undeliverable")),
        "comments": [{"received_at": c["received_at"], "text": c["text"]}
                     for c in store.comments_of(school.doc_id)],
        "history": history(store, school.doc_id),
        # results.py: results, visits and outcomes.
        **results.export_fields(school),
    }


def history(store: Store, school_id: int) -> list[dict[str, Any]]:
    """What came in and what went out for one school, oldest first."""
    came = [{"at": e["at"], "event": e["event"], "message_id": e["message_id"],
             "detail": e["detail"]} for e in store.history_of_school(school_id)]
    went = [{"at": o.get("sent_at") or o["not_before"],
             "event": f"{o['kind']} {o['status']}",
             "message_id": o["message_id"], "detail": ", ".join(o["to"])}
            for o in store.outgoing_for_school(school_id)]
    return sorted(came + went, key=lambda e: e["at"])


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def status_table(store: Store, now: datetime) -> str:
    """Clusters and their schools as an aligned plain-text table."""
    rows: list[tuple[str, ...]] = [("CLUSTER / SCHOOL", "COUNCIL / PHASE",
                                    "STATUS", "CONTACT")]
    for cluster in sorted(store.all_clusters(), key=lambda c: c.doc_id):
        lead = cluster.get("lead") or {}
        validator = cluster.get("validator")
        status = STATUS_LABELS.get(cluster["status"], cluster["status"])
        if validator:
            status += f" ({validator['name']})"
        rows.append((str(cluster.get("name") or "(no name yet)"),
                     str(cluster.get("local_authority") or "?"), status,
                     str(lead.get("email") or "")))
        for school in store.schools_of(cluster.doc_id):
            contact = str(school.get("contact_email") or "")
            if school.get("undeliverable"):
                contact += " (bounces)"
            status = STATUS_LABELS.get(school["status"], school["status"])
            invited_at = school.get("invited_at") or ""
            if school["status"] == "invited" and invited_at > stamp(now):
                status = f"invitation due {long_time(invited_at)}"
            rows.append(("  " + school["name"], str(school.get("phase") or "?"),
                         status, contact))
    if len(rows) == 1:
        return "No clusters recorded yet.\n"
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
             .rstrip() for row in rows]
    footer = []
    last_poll = store.get_meta("last_poll")
    footer.append(f"Last poll: {last_poll or 'never'}")
    aside = len(store.set_aside_messages())
    footer.append(f"Messages set aside: {aside}")
    return "\n".join(lines + [""] + footer) + "\n"
