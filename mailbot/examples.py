"""Example values for every template, so `check-config` can render each one
and a mistake in a template shows up before a school would see it.

The shapes are those the workflow passes (see views.py); keep them in step.
"""

from __future__ import annotations

from datetime import date
from typing import Any

# progress: the 3-9 month goal; supports: the matrix of supports.
from mailbot import progress, supports

_SCHOOLS: list[dict[str, Any]] = [
    {"name": "Kirkton Primary School", "phase": "primary",
     "contact_name": "Fiona Baird", "contact_email": "head@kirkton.example.org",
     "status": "invited", "already_awarded": False,
     "comments": [{"received_at": "2027-01-14T15:00:00+00:00",
                   "text": "Strengths: a weekly coding club."}],
     "comments_count": 7},
    {"name": "Glenbrae High School", "phase": "secondary",
     "contact_name": None, "contact_email": "office@glenbrae.example.org",
     "status": "self_review_complete", "already_awarded": False,
     "comments": []},
    {"name": "Balgonie Primary School", "phase": "primary",
     "contact_name": "Ewan Hart", "contact_email": "e.hart@balgonie.example.org",
     "status": "already_awarded", "already_awarded": True, "comments": []},
]
_CLUSTER: dict[str, Any] = {"name": "Example Cluster", "local_authority": "Fife",
            "lead_name": "Morag Lindsay", "lead_email": "lead@example.org"}
_DEADLINE = date(2027, 1, 26)
_VALIDATOR = {"name": "Isla Fraser", "email": "isla@example.org"}
# An item of the digest, with the quotes and dash that items carry.
_NEW_ADDRESS = ("new address at Kirkton Primary School's domain: "
                "deputy@kirkton.example.org wrote on Tuesday 26 January "
                "2027 (\"Self-review\", set aside as d286ab31) — accept it "
                "with \"accept deputy@kirkton.example.org for #1\"")


def contexts() -> dict[str, dict[str, Any]]:
    """Template name to an example context for it."""
    school = _SCHOOLS[0]
    common = {"cluster": _CLUSTER, "schools": _SCHOOLS}
    reply = {"school": school, "cluster": _CLUSTER,
             "contact_name": school["contact_name"]}
    understood = {"cluster_name": None, "local_authority": "Fife",
                  "lead_name": "Gordon Fleming", "lead_email": "g@example.org",
                  "schools": [{"name": "Burnside Primary", "phase": None,
                               "contact_name": None, "contact_email": None,
                               "already_awarded": False}]}
    invitation = {"school": school, "cluster": _CLUSTER, "deadline": _DEADLINE}
    return {
        "acknowledgment": {**common, "lead_name": "Morag Lindsay",
                           "deadline_days": 14},
        "welcome": {**common, "lead_name": "Morag Lindsay",
                    "deadline": _DEADLINE},
        "council-notice": {**common, "recipient_name": "Fife Council",
                           "council": "Fife"},
        "invitation-primary": invitation,
        "invitation-secondary": {**invitation, "school": _SCHOOLS[1]},
        "invitation-awarded": {**invitation, "school": _SCHOOLS[2]},
        "reminder": {**invitation, "reminder_name": "overdue",
                     "days_left": -1, "overdue": True, "lead_copied": True},
        "comment-receipt": {**reply, "comment": "We run a coding club."},
        "completion-receipt": {**reply, "remaining": 2},
        "visit-request": {**reply, "recipient_name": None,
                          "contact_email": school["contact_email"],
                          "request_text": "We would like a visit.",
                          "has_validator": False},
        "visit-receipt": {**reply, "validator": _VALIDATOR},
        # results.py: self-review results, visits, outcomes and awards.
        **_results_contexts(reply),
        # progress.py: the 3-9 month goal.
        **progress.example_contexts(_CLUSTER, _VALIDATOR),
        # supports.py: the matrix of supports.
        **supports.example_contexts(_CLUSTER, _SCHOOLS, _VALIDATOR),
        "validator-assignment": {**common, "validator": _VALIDATOR},
        "validator-introduction": {"cluster": _CLUSTER,
                                   "lead_name": "Morag Lindsay",
                                   "validator": _VALIDATOR},
        "missing-information": {"sender_name": "Gordon Fleming",
                                "missing": ["the cluster's name"],
                                "form": "Cluster name: ____",
                                "understood": understood},
        "alert": {"mailbox": "imap.example.org:993",
                  "failing_since": "2027-01-12T09:30:00+00:00",
                  "minutes": 35, "alert_minutes": 30,
                  "last_poll": "2027-01-12T09:29:00+00:00",
                  "error": "cannot reach IMAP server imap.example.org:993: "
                           "[Errno 111] Connection refused"},
        "command-reply": {
            "authenticated": True, "problem": None,
            "done": [{"command": "award Kirkton",
                      "result": "Kirkton Primary School: invited → awarded"}],
            "refused": [{"command": "award Glen",
                         "reason": "no school is called Glen"}],
            "files": [{"title": "Example Cluster (#1)",
                       "text": '{"name": "Example Cluster"}'}],
            "commands_help": ["award SCHOOL"]},
        "digest": {"day": _DEADLINE, "since": None,
                   "last_poll": "2027-01-26T07:29:00+00:00",
                   "poll_failing_since": None,
                   "counts": {"clusters": 1, "schools": 3, "complete": 2},
                   "sections": [{"title": "New clusters", "empty": "None.",
                                 "items": ["Example Cluster (Fife)"]},
                                {"title": "New addresses waiting to be "
                                          "accepted (their mail changed "
                                          "nothing)",
                                 "empty": "None.",
                                 "items": [_NEW_ADDRESS]}]},
    }


# -- results.py ----------------------------------------------------------------

_SCORES: list[dict[str, Any]] = [
    {"name": "Leadership & Vision", "percent": "82", "counts": None,
     "estimated": False, "short": False},
    {"name": "Use of Digital Technology to Deliver the Curriculum",
     "percent": "64.5", "counts": {"addressed": 9, "partially": 3,
                                   "not_addressed": 2},
     "estimated": True, "short": True},
    {"name": "School Culture", "percent": "75", "counts": None,
     "estimated": False, "short": False},
    {"name": "Professional Development", "percent": None, "counts": None,
     "estimated": False, "short": True},
    {"name": "Resources & Infrastructure", "percent": "90", "counts": None,
     "estimated": False, "short": False},
]
_PROBLEM = "Curriculum: 14 statements are counted, but the sheet lists 15"
_SHORT = ["Use of Digital Technology to Deliver the Curriculum",
          "Professional Development"]


def _results_contexts(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "results-receipt": {**reply, "scores": _SCORES, "short": _SHORT,
                            "problems": [_PROBLEM],
                            "estimated": True, "threshold": 70,
                            "ready": False},
        "visit-not-yet": {**reply, "stale": False,
                          "scores": _SCORES, "short": _SHORT, "problems": [],
                          "threshold": 70},
        "visit-date": {**reply, "visit_at": "Thursday 4 March 2027 at 10:00",
                       "changed": False, "validator_name": "Isla Fraser"},
        "visit-date-query": {"recipient_name": "Isla Fraser",
                             "school": reply["school"],
                             "problem": "more than one date is given "
                                        "(Thursday 4 March 2027, Friday 5 "
                                        "March 2027)"},
        "award-congratulations": {**reply, "validator_name": "Isla Fraser",
                                  "notes": "A confident, well-led school.",
                                  "threshold": 70},
        "visit-not-yet-outcome": {**reply, "validator_name": "Isla Fraser",
                                  "notes": "Not yet: the curriculum work "
                                           "needs to reach every class.",
                                  "threshold": 70},
    }
