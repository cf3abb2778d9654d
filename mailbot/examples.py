"""Example values for every template, so `check-config` can render each one
and a mistake in a template shows up before a school would see it.

Each template has a main example (`contexts`) and others (`variants`):
together they take every branch of it, {% if %}, {% elif %}, {% else %}
and the body of each {% for %} (tests/test_templates.py checks this).
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
     "comments": [], "comments_count": 0},
    {"name": "Balgonie Primary School", "phase": "primary",
     "contact_name": "Ewan Hart", "contact_email": "e.hart@balgonie.example.org",
     "status": "already_awarded", "already_awarded": True, "comments": [],
     "comments_count": 0},
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


def variants() -> dict[str, list[dict[str, Any]]]:
    """Template name to its example contexts, that of `contexts` first;
    together they take every branch of the template."""
    main = contexts()
    found = {name: [context] for name, context in main.items()}
    more = {**_more_contexts(main),
            **_more_results_contexts(),
            **progress.more_example_contexts(_CLUSTER, _VALIDATOR),
            **supports.more_example_contexts(_CLUSTER, _SCHOOLS, _VALIDATOR)}
    for name, extra in more.items():
        found[name] += extra
    return found


def contexts() -> dict[str, dict[str, Any]]:
    """Template name to its main example context."""
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
                          "request_text": "We would like a visit.\nAny "
                                          "Tuesday in March would suit us.",
                          "has_validator": False,
                          # results.py: the school's results and history.
                          "scores": _READY_SCORES,
                          "results_received_at": "2027-02-22T10:15:00+00:00",
                          "history": _HISTORY, "comments_count": 7},
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


def _more_contexts(main: dict[str, dict[str, Any]]
                   ) -> dict[str, list[dict[str, Any]]]:
    """Further contexts for the branches the main ones do not take."""
    reminder = {**main["reminder"], "overdue": False, "lead_copied": False}
    # A school whose contact's address mailbot does not have, asking by
    # the subject alone.
    glenbrae = {**_SCHOOLS[1], "contact_email": None}
    digest = main["digest"]
    command_reply = main["command-reply"]
    return {
        # Before the deadline: a week away, then the days a weekend or a
        # holiday held the second reminder back to.
        "reminder": [{**reminder, "reminder_name": "first", "days_left": 7},
                     {**reminder, "reminder_name": "deadline-near",
                      "days_left": 1},
                     {**reminder, "reminder_name": "deadline-near",
                      "days_left": 0}],
        "completion-receipt": [{**main["completion-receipt"], "remaining": 0}],
        "visit-request": [{**main["visit-request"], "school": glenbrae,
                           "recipient_name": "Isla Fraser",
                           "contact_name": None, "contact_email": None,
                           "request_text": "", "has_validator": True,
                           "scores": [], "results_received_at": None,
                           "history": [{"at": "2027-01-12T09:00:00+00:00",
                                        "event": "recorded", "detail": ""},
                                       {"at": "2027-01-25T11:40:00+00:00",
                                        "event": "self review complete",
                                        "detail": ""}],
                           "comments_count": 0}],
        "visit-receipt": [{**main["visit-receipt"], "validator": None}],
        "missing-information": [{
            "sender_name": None, "missing": ["at least one school"],
            "form": "Cluster name: Levenmouth Cluster\n"
                    "Local authority: Fife\n"
                    "Lead contact: Gordon Fleming, g@example.org\n"
                    "Schools (one per line: name (primary or secondary) - "
                    "contact name - email address):\n"
                    "1. ____ (____) - ____ - ____",
            "understood": {"cluster_name": "Levenmouth Cluster",
                           "local_authority": "Fife",
                           "lead_name": "Gordon Fleming",
                           "lead_email": "g@example.org", "schools": []}}],
        # A maildir that has never been read.
        "alert": [{**main["alert"], "mailbox": "/var/mail/programme",
                   "last_poll": None,
                   "error": "[Errno 13] Permission denied: "
                            "'/var/mail/programme/new'"}],
        "command-reply": [
            {**command_reply, "authenticated": False,
             "problem": "no Authentication-Results from a trusted server, "
                        "and it answers no mail sent to this address in "
                        "the last 30 days",
             "done": [], "refused": [{"command": "award Kirkton",
                                      "reason": "not done"}],
             "files": []},
            {**command_reply, "refused": [],
             "done": [*command_reply["done"],
                      {"command": "send file of Example Cluster",
                       "result": "the file of Example Cluster is below, as "
                                 "mailbot export writes it"}]},
            {**command_reply, "done": [], "files": [],
             "refused": [{"command": "awrad Kirkton",
                          "reason": 'not understood; did you mean "award '
                                    '..."? (see the list of commands '
                                    'below)'}]}],
        # Reading the mailbox has failed since the last digest, and on the
        # first day, before it was ever read.
        "digest": [{**digest, "since": "2027-01-25T07:30:00+00:00",
                    "poll_failing_since": "2027-01-26T06:40:00+00:00",
                    "sections": [digest["sections"][0],
                                 {"title": "Comments received",
                                  "empty": "No new comments.", "items": []},
                                 *digest["sections"][1:]]},
                   {**digest, "last_poll": None, "poll_failing_since": None}],
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
# A school at 70% or more in every criterion.
_READY_SCORES: list[dict[str, Any]] = [
    {"name": "Leadership & Vision", "percent": "82", "counts": None,
     "estimated": False, "short": False},
    {"name": "Use of Digital Technology to Deliver the Curriculum",
     "percent": "71.5", "counts": {"addressed": 12, "partially": 2,
                                   "not_addressed": 0},
     "estimated": True, "short": False},
    {"name": "School Culture", "percent": "75", "counts": None,
     "estimated": False, "short": False},
    {"name": "Professional Development", "percent": "70", "counts": None,
     "estimated": False, "short": False},
    {"name": "Resources & Infrastructure", "percent": "90", "counts": None,
     "estimated": False, "short": False},
]
# The latest of a school's history, as the visit-request notice shows it.
_HISTORY: list[dict[str, Any]] = [
    {"at": "2027-01-12T09:00:00+00:00", "event": "recorded", "detail": ""},
    {"at": "2027-01-14T15:00:00+00:00", "event": "comment",
     "detail": "Strengths: a weekly coding club."},
    {"at": "2027-02-22T10:15:00+00:00", "event": "self review results",
     "detail": "Leadership & Vision 82%, Use of Digital Technology to "
               "Deliver the Curriculum 71.5%, School Culture 75%, "
               "Professional Development 70%, Resources & Infrastructure "
               "90%; 70% or more in every criterion"},
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


def _more_results_contexts() -> dict[str, list[dict[str, Any]]]:
    """Further contexts for the branches of results.py's templates."""
    main = _results_contexts({"school": _SCHOOLS[0], "cluster": _CLUSTER,
                              "contact_name": _SCHOOLS[0]["contact_name"]})
    visit_not_yet = main["visit-not-yet"]
    return {
        "results-receipt": [{**main["results-receipt"],
                             "scores": _READY_SCORES, "short": [],
                             "problems": [], "estimated": False,
                             "ready": True}],
        # Results unchanged since a "not yet"; results short, sent with
        # the request, with a problem in them.
        "visit-not-yet": [{**visit_not_yet, "stale": True,
                           "scores": _READY_SCORES, "short": []},
                          {**visit_not_yet, "problems": [_PROBLEM]}],
        "visit-date": [{**main["visit-date"], "changed": True,
                        "visit_at": "Tuesday 9 March 2027 at 13:30"}],
    }
