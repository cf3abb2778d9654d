"""The record as other tools and people read it: `export` and `status`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tinydb.table import Document

from mailbot import progress, results
from mailbot.compose import UK, long_time
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
    """The stable JSON shape: clusters with their schools, and mail set aside.

    Each cluster also carries its own story, for the programme office:
    when it started and its nine-month goal, the matrix of supports (with
    its ties and other supports, by school id and name), the progress
    reports sent, and its history (nomination, activation, validator,
    matrix proposed and accepted, reports, stall notices, staff commands,
    and the mail about the whole cluster), oldest first."""
    clusters = []
    went: dict[int, list[Document]] = {}
    for sent in store.all_outgoing():
        if sent.get("cluster_id") is not None and sent.get("school_id") is None:
            went.setdefault(int(sent["cluster_id"]), []).append(sent)
    for cluster in sorted(store.all_clusters(), key=lambda c: c.doc_id):
        lead = cluster.get("lead") or {}
        validator = cluster.get("validator")
        start = (progress.start_of(cluster) if cluster.get("started_at")
                 or cluster.get("activated_at") else None)
        clusters.append({
            "id": cluster.doc_id,
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
            "activated_at": cluster.get("activated_at"),
            "started_at": cluster.get("started_at"),
            "goal_by": progress.add_months(start.astimezone(UK).date(),
                                           progress.GOAL_MONTHS).isoformat()
            if start else None,
            "ready_at": cluster.get("ready_at"),
            "validator_assigned_at": cluster.get("validator_assigned_at"),
            "progress_reports": sorted(cluster.get("progress_reports") or []),
            "support_proposal": _proposal(store, cluster),
            "history": cluster_history(store, cluster.doc_id,
                                       went.get(cluster.doc_id, [])),
        })
    set_aside = [{"id": short_id(m["key"]), "message_id": m.get("message_id"),
                  "from": _lower(m.get("from")), "subject": m.get("subject"),
                  "reason": m.get("reason"), "received_at": m.get("received_at")}
                 for m in store.set_aside_messages()]
    return {"clusters": clusters, "set_aside": set_aside}


def _school(store: Store, school: Document) -> dict[str, Any]:
    return {
        "id": school.doc_id,
        "name": school["name"],
        "phase": school.get("phase"),
        "contact_name": school.get("contact_name"),
        "contact_email": _lower(school.get("contact_email")),
        "status": school["status"],
        "invited_at": school.get("invited_at"),
        "invitation": _invitation(store, school.doc_id),
        "deadline": school.get("deadline"),
        "undeliverable": bool(school.get("undeliverable")),
        "comments": [{"received_at": c["received_at"], "text": c["text"],
                      "tags": results.tags_of(c)}
                     for c in store.comments_of(school.doc_id)],
        "history": history(store, school.doc_id),
        # results.py: results, visits and outcomes.
        **results.export_fields(school),
    }


def _invitation(store: Store, school_id: int) -> dict[str, Any] | None:
    """Where the school's latest invitation stands: its status ("pending"
    while it waits to be `due`, then "sent", or "failed"...), or None if
    none was ever queued. A school is "invited" from its cluster's start,
    before the mail itself goes (at the next working hour, say)."""
    sent = [o for o in store.outgoing_for_school(school_id)
            if o.get("kind") == "invitation"]
    if not sent:
        return None
    latest = max(sent, key=lambda o: o.doc_id)
    return {"status": latest.get("status"), "due": latest.get("not_before"),
            "sent_at": latest.get("sent_at")}


def history(store: Store, school_id: int) -> list[dict[str, Any]]:
    """What came in and what went out for one school, oldest first."""
    came = [{"at": e["at"], "event": e["event"], "message_id": e["message_id"],
             "detail": e["detail"]} for e in store.history_of_school(school_id)]
    went = [{"at": o.get("sent_at") or o["not_before"],
             "event": f"{o['kind']} {o['status']}",
             "message_id": o["message_id"], "detail": ", ".join(o["to"])}
            for o in store.outgoing_for_school(school_id)]
    return sorted(came + went, key=lambda e: e["at"])


def cluster_history(store: Store, cluster_id: int,
                    went: list[Document] | None = None) -> list[dict[str, Any]]:
    """What came in and went out for a cluster as a whole (not for one of
    its schools: each school's history has that), oldest first; `went`,
    the mail sent about it, if already looked up."""
    if went is None:
        went = [o for o in store.all_outgoing()
                if o.get("cluster_id") == cluster_id and o.get("school_id") is None]
    came = [{"at": e["at"], "event": e["event"], "message_id": e["message_id"],
             "detail": e["detail"]} for e in store.history_of_cluster(cluster_id)
            if e.get("school_id") is None]
    sent = [{"at": o.get("sent_at") or o["not_before"],
             "event": f"{o['kind']} {o['status']}",
             "message_id": o["message_id"], "detail": ", ".join(o["to"])}
            for o in went]
    return sorted(came + sent, key=lambda e: e["at"])


def _proposal(store: Store, cluster: Document) -> dict[str, Any] | None:
    """The matrix of supports (supports.py), its schools named as well as
    numbered: who mentors whom in which criterion, and the other supports
    (validator, council, Education Scotland) for gaps no school covers."""
    record = cluster.get("support_proposal")
    if not isinstance(record, dict):
        return None
    names: dict[int, str | None] = {}

    def name(school_id: Any) -> str | None:
        if not isinstance(school_id, int):
            return None
        if school_id not in names:
            try:
                names[school_id] = str(store.school(school_id)["name"])
            except KeyError:
                names[school_id] = None
        return names[school_id]

    return {
        "status": record.get("status"),
        "version": record.get("version"),
        "by": record.get("by"),
        "proposed_at": record.get("proposed_at"),
        "accepted_at": record.get("accepted_at"),
        "accepted_by": record.get("accepted_by"),
        "ties": [{"criterion": t.get("criterion"),
                  "mentee_id": t.get("mentee"),
                  "mentee_school": name(t.get("mentee")),
                  "mentor_id": t.get("mentor"),
                  "mentor_school": name(t.get("mentor")),
                  "in_cluster": bool(t.get("in_cluster", True))}
                 for t in record.get("ties") or ()],
        "fallbacks": [{"criterion": f.get("criterion"),
                       "school_id": f.get("school"),
                       "school": name(f.get("school")),
                       "support": f.get("support")}
                      for f in record.get("fallbacks") or ()],
        "unknown": [{"school_id": i, "school": name(i)}
                    for i in record.get("unknown") or ()],
    }


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
        name = cluster.get("name") or "(no name yet)"
        rows.append((f"#{cluster.doc_id} {name}",
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
            rows.append((f"  #{school.doc_id} {school['name']}",
                         str(school.get("phase") or "?"),
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
