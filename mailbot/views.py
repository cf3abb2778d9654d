"""Plain dictionaries of the record, as templates and the export see them."""

from __future__ import annotations

from typing import Any

from tinydb.table import Document

from mailbot.store import Store

# How many of a school's comments mail quotes in full (the latest).
COMMENTS_SHOWN = 5


def cluster_label(cluster: Document) -> str:
    """A cluster as staff find it: its name and its number."""
    return f"{cluster.get('name') or '(no name yet)'} (#{cluster.doc_id})"


def cluster_view(cluster: Document) -> dict[str, Any]:
    lead = cluster.get("lead") or {}
    return {
        "name": cluster.get("name"),
        "local_authority": cluster.get("local_authority"),
        "lead_name": lead.get("name"),
        "lead_email": lead.get("email"),
    }


def school_view(store: Store, school: Document) -> dict[str, Any]:
    return {
        "name": school["name"],
        "phase": school.get("phase"),
        "contact_name": school.get("contact_name"),
        "contact_email": school.get("contact_email"),
        "status": school.get("status"),
        "already_awarded": school.get("status") == "already_awarded",
        # The latest comments in full, and how many there are: the rest
        # are in the record and its export.
        "comments": [{"received_at": c["received_at"], "text": c["text"]}
                     for c in store.comments_of(school.doc_id,
                                                latest=COMMENTS_SHOWN)],
        "comments_count": store.comment_count(school.doc_id),
    }


def schools_view(store: Store, cluster_id: int) -> list[dict[str, Any]]:
    return [school_view(store, s) for s in store.schools_of(cluster_id)]
