"""Every email template renders, reads well and escapes what it must."""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from mailbot import examples, progress, supports
from mailbot.compose import Composer, Draft
from mailbot.errors import ConfigError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
PROGRAMME = "Digital Schools Awards Cluster Initiative"
ADDRESS = "programme@dsa.example.org"
SENDER = "Digital Schools Programme"
GLOBALS = {"programme_name": PROGRAMME, "programme_address": ADDRESS,
           "sender_name": SENDER}

NASTY = "O'Neill <script>"

CLUSTER = {
    "name": "Ardmore Learning Community",
    "local_authority": "Argyll and Bute",
    "lead_name": "Fiona MacLeod",
    "lead_email": "fiona.macleod@ardmore.sch.uk",
}

SCHOOLS = [
    {"name": "Ardmore Primary School", "phase": "primary",
     "contact_name": "Alan Reid", "contact_email": "alan.reid@ardmore.sch.uk",
     "already_awarded": False},
    {"name": "St Columba's RC Primary School and Nursery Class",
     "phase": "primary", "contact_name": "Mairi Campbell",
     "contact_email": "m.campbell@stcolumbas-ps.argyll-bute.sch.uk",
     "already_awarded": True},
    {"name": "Ardmore High School", "phase": "secondary",
     "contact_name": "Euan Douglas",
     "contact_email": "headteacher@ardmorehigh.sch.uk",
     "already_awarded": False},
    {"name": f"{NASTY} Academy", "phase": "secondary",
     "contact_name": "Siobhan O'Neill", "contact_email": "soneill@example.org",
     "already_awarded": False},
]

SCHOOL = SCHOOLS[0]
FORM = """\
Cluster name:      Ardmore Learning Community
Local authority:   ____________________________
Lead contact:      Fiona MacLeod <fiona.macleod@ardmore.sch.uk>

School 2
  Name:            St Columba's RC Primary School and Nursery Class
  Primary or secondary: ______
  Contact name:    ____________________________
  Contact email:   ____________________________
"""

LONG_COMMENT = (
    "We feel our strongest area is digital learning and teaching: every "
    "class uses shared documents and our P6 pupils run a coding club at "
    "lunchtime for the younger children.\n\n"
    "Our weakest area is probably the digital leadership section. Our "
    "strategy was last updated in 2022 and needs revisiting, and see "
    "https://www.example.org/a/very/long/link/to/our/school/digital/strategy/2022-version.pdf"
    " for the current version."
)


def school_with_status(school, status, comments=()):
    return {
        **{k: v for k, v in school.items() if k != "already_awarded"},
        "status": status,
        "comments": list(comments),
    }


# name -> (kind, context, names that must appear in subject, school names
# that must appear in the body)
CASES = {
    "acknowledgment": ("acknowledgment", {
        "lead_name": "Fiona MacLeod", "cluster": CLUSTER,
        "schools": SCHOOLS, "deadline_days": 14,
    }),
    "welcome": ("welcome", {
        "lead_name": "Fiona MacLeod", "cluster": CLUSTER,
        "schools": SCHOOLS, "deadline": date(2027, 1, 26),
    }),
    "council-notice": ("council-notice", {
        "recipient_name": "Morag Stewart", "cluster": CLUSTER,
        "schools": SCHOOLS, "council": "Argyll and Bute",
    }),
    "invitation-primary": ("invitation", {
        "school": SCHOOL, "cluster": CLUSTER, "deadline": date(2027, 1, 26),
    }),
    "invitation-secondary": ("invitation", {
        "school": SCHOOLS[2], "cluster": CLUSTER,
        "deadline": date(2027, 1, 26),
    }),
    "invitation-awarded": ("invitation", {
        "school": SCHOOLS[1], "cluster": CLUSTER,
        "deadline": date(2027, 1, 26),
    }),
    "reminder": ("reminder", {
        "school": SCHOOL, "cluster": CLUSTER, "deadline": date(2027, 1, 26),
        "reminder_name": "first", "days_left": 7, "overdue": False,
        "lead_copied": False,
    }),
    "comment-receipt": ("comment-receipt", {
        "school": SCHOOL, "contact_name": "Alan Reid",
        "comment": LONG_COMMENT, "cluster": CLUSTER,
    }),
    "completion-receipt": ("completion-receipt", {
        "school": SCHOOL, "contact_name": "Alan Reid", "cluster": CLUSTER,
        "remaining": 2,
    }),
    "visit-request": ("visit-request", {
        "recipient_name": "Dr Catriona Fraser", "school": SCHOOL,
        "cluster": CLUSTER, "contact_name": "Alan Reid",
        "contact_email": "alan.reid@ardmore.sch.uk",
        "request_text": "We think we are now ready for our validation visit."
                        "\nAny Tuesday or Thursday in March would suit us.",
        "has_validator": True,
    }),
    "visit-receipt": ("acknowledgment", {
        "school": SCHOOL, "contact_name": "Alan Reid", "cluster": CLUSTER,
        "validator": {"name": "Dr Catriona Fraser",
                      "email": "c.fraser@validators.example.org"},
    }),
    "validator-assignment": ("validator-assignment", {
        "validator": {"name": "Dr Catriona Fraser",
                      "email": "c.fraser@validators.example.org"},
        "cluster": CLUSTER,
        "schools": [
            school_with_status(SCHOOLS[0], "self_review_complete", [
                {"received_at": "2027-01-12T09:30:00+00:00",
                 "text": LONG_COMMENT},
                {"received_at": "2027-01-19T14:05:00+00:00",
                 "text": "Our AUP was updated last week."},
            ]),
            school_with_status(SCHOOLS[1], "already_awarded"),
            school_with_status(SCHOOLS[2], "visit_requested"),
            school_with_status(SCHOOLS[3], "self_review_complete", [
                {"received_at": "2027-01-15T11:00:00+00:00",
                 "text": "Strong on <b>cyber resilience</b>."},
            ]),
        ],
    }),
    "validator-introduction": ("validator-assignment", {
        "lead_name": "Fiona MacLeod", "cluster": CLUSTER,
        "validator": {"name": "Dr Catriona Fraser",
                      "email": "c.fraser@validators.example.org"},
    }),
    "missing-information": ("missing-information", {
        "sender_name": "Fiona MacLeod",
        "missing": ["the local authority",
                    ("whether St Columba's RC Primary School and Nursery "
                    "Class is primary or secondary, and its contact")],
        "form": FORM,
        "understood": {
            "cluster_name": "Ardmore Learning Community",
            "local_authority": None,
            "lead_name": "Fiona MacLeod",
            "lead_email": "fiona.macleod@ardmore.sch.uk",
            "schools": [
                {"name": "Ardmore Primary School", "phase": "primary",
                 "contact_name": "Alan Reid",
                 "contact_email": "alan.reid@ardmore.sch.uk"},
                {"name": "St Columba's RC Primary School and Nursery Class",
                 "phase": None, "contact_name": None, "contact_email": None},
            ],
        },
    }),
    "alert": ("alert", {
        "mailbox": "imap.example.org:993", "minutes": 47,
        "alert_minutes": 30, "failing_since": "2027-01-26T06:13:00+00:00",
        "last_poll": "2027-01-26T06:12:00+00:00",
        "error": "cannot reach IMAP server imap.example.org:993: "
                 "[Errno 111] Connection refused",
    }),
    "command-reply": ("command-reply", {
        "authenticated": True, "problem": None,
        "done": [{"command": "award Ardmore Primary",
                  "result": "Ardmore Primary School: invited → awarded"}],
        "refused": [{"command": "award Ardmore",
                     "reason": "Ardmore could be any of 2: #1 Ardmore "
                               "Primary School; #3 Ardmore High School"}],
        "files": [{"title": "Ardmore Learning Community (#1)",
                   "text": '{\n  "name": "Ardmore Learning Community"\n}'}],
        "commands_help": ["award SCHOOL", "send file of CLUSTER"],
    }),
    "digest": ("digest", {
        "day": date(2027, 1, 26),
        "since": "2027-01-25T07:00:00+00:00",
        "last_poll": "2027-01-26T07:29:00+00:00",
        "poll_failing_since": None,
        "counts": {"clusters": 3, "schools": 17, "complete": 5},
        "sections": [
            {"title": "New nominations", "empty": "No new nominations.",
             "items": [("Ardmore Learning Community (Argyll and Bute): "
                       "4 schools, acknowledged and invited; waiting for "
                       "staff to confirm the council notice.")]},
            {"title": "Needs a person", "empty": "Nothing needs a person.",
             "items": []},
        ],
    }),
}

# results.py: self-review results, visits, outcomes and awards.
_SCORES = [
    {"name": "Leadership & Vision", "percent": "82", "counts": None,
     "estimated": False, "short": False},
    {"name": "Use of Digital Technology to Deliver the Curriculum",
     "percent": "64.5", "counts": None, "estimated": True, "short": True},
    {"name": "School Culture", "percent": "75", "counts": None,
     "estimated": False, "short": False},
    {"name": "Professional Development", "percent": None, "counts": None,
     "estimated": False, "short": True},
    {"name": "Resources & Infrastructure", "percent": "90", "counts": None,
     "estimated": False, "short": False},
]
_SHORT = ["Use of Digital Technology to Deliver the Curriculum",
          "Professional Development"]
_REPLY = {"school": SCHOOL, "contact_name": "Alan Reid", "cluster": CLUSTER}
CASES.update({
    "results-receipt": ("results-receipt", {
        **_REPLY, "scores": _SCORES, "short": _SHORT, "threshold": 70,
        "problems": [("Curriculum: 100% is given, but not every statement "
                      "is counted as addressed")],
        "estimated": True, "ready": False}),
    "visit-not-yet": ("visit-not-yet", {
        **_REPLY, "stale": False, "scores": _SCORES,
        "short": _SHORT, "problems": [], "threshold": 70}),
    "visit-date": ("visit-date", {
        **_REPLY, "visit_at": "Thursday 4 March 2027 at 10:00",
        "changed": False, "validator_name": "Dr Catriona Fraser"}),
    "visit-date-query": ("visit-date-query", {
        "recipient_name": "Dr Catriona Fraser", "school": SCHOOL,
        "problem": "a day of the week is given, but not the date"}),
    "award-congratulations": ("award-congratulations", {
        **_REPLY, "validator_name": "Dr Catriona Fraser",
        "notes": "A confident, well-led school.", "threshold": 70}),
    "visit-not-yet-outcome": ("visit-not-yet-outcome", {
        **_REPLY, "validator_name": "Dr Catriona Fraser",
        "notes": "Not yet: coding needs to reach every class.",
        "threshold": 70}),
})

# progress.py: the 3-9 month goal, with the example contexts.
CASES.update({name: (name, context) for name, context in
              progress.example_contexts(CLUSTER, {
                  "name": "Dr Catriona Fraser",
                  "email": "c.fraser@validators.example.org"}).items()})

# supports.py: the matrix of supports, with the example contexts.
CASES.update({name: ("support-plan" if name == "support-plan"
                     else "support-proposal", context)
              for name, context in supports.example_contexts(CLUSTER, SCHOOLS, {
                  "name": "Dr Catriona Fraser",
                  "email": "c.fraser@validators.example.org"}).items()})
NAMES = sorted(CASES)
# The schools each message must name, and the name its subject must carry.
SUBJECT_NAME = {
    "alert": "cannot read the programme mailbox",
    "digest": "26 January 2027",
    "command-reply": "Your commands",
    "missing-information": "Ardmore Learning Community",
    "progress-digest": "Weekly digest",  # progress.py
    "where-we-stand": "Kirkton Primary School",  # progress.py
}
SCHOOL_MESSAGES = {
    "invitation-primary", "invitation-secondary", "invitation-awarded",
    "reminder", "comment-receipt", "completion-receipt", "visit-request",
    "visit-receipt",
}
LIST_MESSAGES = {"acknowledgment", "welcome", "council-notice",
                 "validator-assignment"}


@pytest.fixture(scope="module")
def composer():
    return Composer(TEMPLATES, SENDER, ADDRESS, GLOBALS)


def render(composer, name, context=None, kind=None):
    default_kind, default_context = CASES[name]
    draft = Draft(key=f"test/{name}", kind=kind or default_kind,
                  template=name, to=("someone@example.org",),
                  context=copy.deepcopy(default_context if context is None
                                        else context))
    return composer.render(draft)


def expected_subject_name(name, context):
    if name in SUBJECT_NAME:
        return SUBJECT_NAME[name]
    if "school" in context:
        return context["school"]["name"]
    return context["cluster"]["name"]


def text_schools(context):
    if "schools" in context:
        return [s["name"] for s in context["schools"]]
    if "understood" in context:
        return [s["name"] for s in context["understood"]["schools"]]
    if "school" in context:
        return [context["school"]["name"]]
    return []


def flat(text):
    """Text with its line breaks and runs of spaces made single spaces."""
    return " ".join(text.split())


def long_lines(text, allowed=()):
    """Lines over 78 characters, other than addresses and links."""
    return [line for line in text.splitlines()
            if len(line) > 78 and line not in allowed
            and "@" not in line and "://" not in line]


def test_every_template_has_both_parts():
    names = {p.stem for p in TEMPLATES.glob("*.txt")
             if not p.stem.startswith("_")}
    assert names == set(CASES)
    for name in names:
        assert (TEMPLATES / f"{name}.html").is_file()


def test_check_renders_every_template_with_the_examples(composer):
    assert set(examples.contexts()) == set(NAMES)
    composer.check(examples.contexts())
    variants = examples.variants()
    assert set(variants) == set(NAMES)
    assert {name: found[0] for name, found in variants.items()} \
        == examples.contexts()
    composer.check(variants)


def broken_reminder(tmp_path, edit):
    """A copy of the templates whose reminder.txt lines `edit` changed in
    place; the composer over it, and that file."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    reminder = folder / "reminder.txt"
    lines = reminder.read_text().splitlines()
    edit(lines)
    reminder.write_text("\n".join(lines) + "\n")
    return Composer(folder, SENDER, ADDRESS, GLOBALS), reminder


@pytest.mark.parametrize("broken, problem", [
    ("{{ school.nme }}", "has no attribute 'nme'"),
    ("{% if %}", "Expected an expression"),
])
def test_check_names_the_file_and_line_of_a_mistake(tmp_path, broken, problem):
    # After the subject, on every path.
    composer, reminder = broken_reminder(
        tmp_path, lambda lines: lines.insert(6, broken))
    with pytest.raises(ConfigError) as caught:
        composer.check(examples.contexts())
    assert caught.value.path == str(reminder)
    assert caught.value.key == "line 7"
    assert problem in caught.value.problem


def test_check_renders_the_branch_the_main_example_does_not_take(tmp_path):
    def edit(lines):
        # The subject of a reminder not yet overdue; the main example is
        # one overdue.
        assert lines[4].startswith("Subject: Reminder:")
        lines[4] = "Subject: Reminder: due {{ deadline|nosuchfilter }}"

    composer, reminder = broken_reminder(tmp_path, edit)
    with pytest.raises(ConfigError) as caught:
        composer.check(examples.variants())
    assert caught.value.path == str(reminder)
    assert caught.value.key == "line 5"
    assert "nosuchfilter" in caught.value.problem


def _jinja_own(node):
    """Whether an `if` in a template's code is Jinja's own (`if 0:`, or a
    check that a variable or argument `is missing`), not the template's."""
    test = node.test
    return isinstance(test, ast.Constant) or (
        isinstance(test, ast.Compare) and isinstance(test.ops[0], ast.Is)
        and isinstance(test.comparators[0], ast.Name)
        and test.comparators[0].id == "missing")


def _branches(code):
    """Each branch of a template's compiled code: the For or If of the
    template that opens it, how it is reached, and its statements."""
    for parent in ast.walk(ast.parse(code)):
        for field in ("body", "orelse"):
            statements = getattr(parent, field, None)
            if not isinstance(statements, list):
                continue
            loop = None
            for node in statements:
                if isinstance(node, ast.For):
                    loop = node
                    yield node, "{% for %} never ran its body", node.body
                elif isinstance(node, ast.If) and not _jinja_own(node):
                    if (loop is not None and isinstance(node.test, ast.Name)
                            and node.test.id.startswith("t_")):
                        # Jinja's flag of a loop that ran no time.
                        yield loop, "{% for %} never ran its {% else %}", \
                            node.body
                        continue
                    yield node, "{% if %} or {% elif %} never true", node.body
                    if node.orelse:
                        yield node, "{% if %} or {% elif %} never false", \
                            node.orelse


def test_the_examples_take_every_branch_of_every_template():
    """Rendered together, the examples (examples.variants) take every
    {% if %}, {% elif %} and {% else %} branch and enter every {% for %}
    body of every template, macros and base.html included, so that
    check-config renders every line. It guards against a mistake in a
    branch no example took, such as the unchecked {% else %} of
    reminder.txt (the subject of a reminder not yet overdue), which passed
    check-config and failed when a real reminder was composed.

    Each template is compiled to Python as Jinja compiles it; the lines
    of that code that run while the examples are rendered are traced, and
    the first statement of every If body, If orelse and For body must be
    among them."""
    composer = Composer(TEMPLATES, SENDER, ADDRESS, GLOBALS)
    contexts = examples.variants()
    ran = defaultdict(set)  # a template's file: lines of its code that ran

    def lines(frame, event, arg):
        if event == "line":
            ran[frame.f_code.co_filename].add(frame.f_lineno)
        return lines

    def calls(frame, event, arg):
        # Jinja compiles a template's code with the template's file as its
        # file name.
        if os.path.dirname(frame.f_code.co_filename) == str(TEMPLATES):
            return lines
        return None

    before = sys.gettrace()
    sys.settrace(calls)
    try:
        composer.check(contexts)
    finally:
        sys.settrace(before)

    missed = []
    paths = sorted([*TEMPLATES.glob("*.txt"), *TEMPLATES.glob("*.html")])
    assert paths
    for path in paths:
        template = composer.env.get_template(path.name)
        code = composer.env.compile(path.read_text(encoding="utf-8"),
                                    path.name, str(path), raw=True)
        run = ran[str(path)]
        assert run, f"{path.name} never rendered"
        for opener, what, body in _branches(code):
            if body[0].lineno not in run:
                line = template.get_corresponding_lineno(opener.lineno)
                missed.append((path.name, line, what))
    assert not missed, ("branches that no example in mailbot/examples.py "
                        "takes:\n" + "\n".join(
                            f"{name} line {line}: {what}"
                            for name, line, what in sorted(missed)))


@pytest.mark.parametrize("name", NAMES)
def test_renders(composer, name):
    subject, text, html = render(composer, name)
    context = CASES[name][1]
    assert subject and "\n" not in subject
    assert expected_subject_name(name, context) in subject
    assert "!" not in subject + text
    words = flat(text)  # prose is rewrapped, so a name may span two lines
    for school in text_schools(context):
        assert school in words, school
        assert school.replace("'", "&#39;").replace("<", "&lt;") \
            .replace(">", "&gt;") in html, school
    assert "None" not in text and "None" not in html
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert PROGRAMME in html and ADDRESS in html
    assert "mailbot" in text and "mailbot" in html
    assert SENDER in text and SENDER in html
    assert not long_lines(text, FORM.splitlines()), long_lines(text)
    assert not text.startswith("\n")
    assert "\n\n\n" not in text


@pytest.mark.parametrize("name", sorted(LIST_MESSAGES))
def test_lists_every_school(composer, name):
    _subject, text, html = render(composer, name)
    for school in CASES[name][1]["schools"]:
        assert school["name"] in text
    assert NASTY in text
    assert "&lt;script&gt;" in html
    assert "<script>" not in html


@pytest.mark.parametrize("name", sorted(SCHOOL_MESSAGES))
def test_escapes_a_nasty_school_name(composer, name):
    context = copy.deepcopy(CASES[name][1])
    context["school"] = {**context["school"], "name": NASTY,
                         "contact_name": "Siobhan O'Neill"}
    if "contact_name" in context:
        context["contact_name"] = "Siobhan O'Neill"
    subject, text, html = render(composer, name, context)
    assert NASTY in subject
    assert NASTY in " ".join(text.split())
    assert "O&#39;Neill &lt;script&gt;" in html
    assert "<script>" not in html


def test_acknowledgment_shows_everything(composer):
    _subject, text, html = render(composer, "acknowledgment")
    for school in SCHOOLS:
        for value in (school["contact_name"], school["contact_email"]):
            assert value in text
            assert value.replace("'", "&#39;") in html
    assert text.count("Already a Digital School") == 1
    assert html.count("Already a Digital School") == 1
    assert "Argyll and Bute" in text and "Argyll and Bute" in html
    assert "14 days" in text and "14 days" in html
    assert "reply" in text


def test_primary_invitation(composer):
    _subject, text, html = render(composer, "invitation-primary")
    for part in (flat(text), html):
        assert "Acceptable Usage Policy" in part
        assert "School Digital Strategy" in part
        assert "Tuesday 26 January 2027" in part
        assert "register" in part.lower()
        assert "checklist" not in part
    assert text.startswith("Dear Alan Reid,")


def test_secondary_invitation(composer):
    _subject, text, html = render(composer, "invitation-secondary")
    for part in (flat(text), html):
        assert "evidence checklist" in part
        assert "Acceptable Usage Policy" not in part
        assert "Tuesday 26 January 2027" in part
    assert text.startswith("Dear Euan Douglas,")


def test_awarded_invitation(composer):
    _subject, text, html = render(composer, "invitation-awarded")
    for part in (flat(text), html):
        assert "need to resubmit" in part
        assert "mentor" in part
    assert text.startswith("Dear Mairi Campbell,")


@pytest.mark.parametrize("name", ["invitation-primary",
                                  "invitation-secondary",
                                  "invitation-awarded"])
def test_invitation_without_a_contact_name(composer, name):
    context = copy.deepcopy(CASES[name][1])
    context["school"]["contact_name"] = None
    _subject, text, html = render(composer, name, context)
    assert text.startswith("Dear colleague,")
    assert "Dear colleague," in html


def test_missing_information_form_is_verbatim(composer):
    _subject, text, html = render(composer, "missing-information")
    assert FORM.strip("\n") in text
    assert "<pre" in html
    assert "St Columba&#39;s RC Primary School and Nursery Class" in html
    for item in CASES["missing-information"][1]["missing"]:
        assert " ".join(item.split()) in " ".join(text.split())
    assert "not given" in text
    assert text.startswith("Dear Fiona MacLeod,")
    # The sign-off is the programme's, not the nomination sender's.
    assert SENDER in text.split("With best wishes,")[1]


def test_missing_information_knowing_almost_nothing(composer):
    context = copy.deepcopy(CASES["missing-information"][1])
    context["sender_name"] = None
    context["understood"] = {"cluster_name": None, "local_authority": None,
                             "lead_name": None, "lead_email": None,
                             "schools": []}
    subject, text, html = render(composer, "missing-information", context)
    assert "Cluster Initiative" in subject
    assert text.startswith("Dear colleague,")
    assert "None" not in subject + text + html
    assert SENDER in text


@pytest.mark.parametrize("name", NAMES)
def test_no_none_for_missing_values(composer, name):
    """Every optional value set to None renders as words, never 'None'."""
    context = copy.deepcopy(CASES[name][1])

    def blank(d):
        for key in ("phase", "contact_name", "contact_email",
                    "local_authority", "lead_name", "lead_email",
                    "recipient_name", "since", "received_at"):
            if key in d:
                d[key] = None

    blank(context)
    for key in ("school", "cluster"):
        if key in context:
            blank(context[key])
    for school in context.get("schools", []):
        blank(school)
        for comment in school.get("comments", []):
            blank(comment)
    if "validator" in context and name == "visit-receipt":
        context["validator"] = None
    if name == "visit-request":
        context["has_validator"] = False
        context["request_text"] = ""
    if name == "comment-receipt":
        context["comment"] = ""
    if context.get("validator"):
        context["validator"]["email"] = None
    subject, text, html = render(composer, name, context)
    for part in (subject, text, html):
        assert "None" not in part
    assert not long_lines(text, FORM.splitlines()), long_lines(text)


@pytest.mark.parametrize("days_left, overdue, lead_copied, reminder, expect", [
    (7, False, False, "first", "7 days away"),
    (1, False, False, "deadline-near", "tomorrow"),
    (0, False, False, "deadline-near", "today"),
    (-3, True, True, "overdue", "3 days ago"),
    (-1, True, False, "final-call", "1 day ago"),
])
def test_reminder_variants(composer, days_left, overdue, lead_copied,
                           reminder, expect):
    context = copy.deepcopy(CASES["reminder"][1])
    context.update(days_left=days_left, overdue=overdue,
                   lead_copied=lead_copied, reminder_name=reminder)
    subject, text, html = render(composer, "reminder", context)
    words = flat(text)
    assert expect in words and expect in html
    assert "Tuesday 26 January 2027" in words
    if overdue:
        assert "passed" in subject and "has now passed" in words
    else:
        assert "Reminder" in subject
    copied = "copied this message to Fiona MacLeod"
    assert (copied in words) is lead_copied
    assert (copied in html) is lead_copied
    assert not long_lines(text)


def test_comment_is_an_indented_block(composer):
    _subject, text, html = render(composer, "comment-receipt")
    lines = text.splitlines()
    body = [ln for ln in lines if "coding club" in ln or "digital leadership"
            in ln]
    assert body and all(ln.startswith("    ") for ln in body)
    assert not any(ln.startswith(">") for ln in lines)
    assert "https://www.example.org/a/very/long/link" in text
    assert "coding club" in html


@pytest.mark.parametrize("remaining, expect", [
    (0, "every school in Ardmore Learning Community has finished"),
    (1, "still one school"),
    (4, "still 4 schools"),
])
def test_completion_receipt_counts(composer, remaining, expect):
    context = {**CASES["completion-receipt"][1], "remaining": remaining}
    _subject, text, html = render(composer, "completion-receipt", context)
    assert expect in " ".join(text.split())
    assert expect in html
    assert ("validator will be assigned" in " ".join(text.split())) \
        == (remaining > 0)


def test_visit_request_to_staff(composer):
    context = {**CASES["visit-request"][1], "has_validator": False,
               "recipient_name": None}
    _subject, text, _html = render(composer, "visit-request", context)
    assert "no validator has been assigned" in flat(text)
    assert text.startswith("Dear colleague,")
    assert "Any Tuesday or Thursday in March" in flat(text)
    assert "alan.reid@ardmore.sch.uk" in text


def test_visit_receipt_names_the_validator_or_the_office(composer):
    _subject, text, html = render(composer, "visit-receipt")
    assert "Dr Catriona Fraser" in flat(text) and "Dr Catriona Fraser" in html
    context = {**CASES["visit-receipt"][1], "validator": None}
    _subject, text, html = render(composer, "visit-receipt", context)
    assert "programme office" in text and "programme office" in html


def test_validator_assignment_file(composer):
    _subject, text, html = render(composer, "validator-assignment")
    for label in ("Self-review complete", "Already a Digital School",
                  "Visit requested"):
        assert label in text and label in html
    assert "12 January 2027 at 09:30" in text
    assert "19 January 2027 at 14:05" in html
    assert "Our AUP was updated last week." in text
    assert "&lt;b&gt;cyber resilience&lt;/b&gt;" in html
    assert "<b>cyber" in text
    assert "matrix of supports" in text and "matrix of supports" in html
    assert text.count("Comments: none received") == 2
    assert "Comments (2):" in text and "Comments (1):" in html


def test_validator_assignment_says_when_only_the_latest_comments_are_quoted(
        composer):
    context = dict(CASES["validator-assignment"][1])
    first = {**context["schools"][0], "comments_count": 12}
    context["schools"] = [first, *context["schools"][1:]]
    _subject, text, html = render(composer, "validator-assignment", context)
    assert "Comments (12, the latest 2 below):" in text
    assert "Comments (12, the latest 2 below):" in html
    assert "Comments (1):" in text


def test_digest(composer):
    _subject, text, html = render(composer, "digest")
    assert "3 clusters, 17 schools, 5 finished or already Digital Schools." in text
    assert "25 January 2027 at 07:00" in text
    assert "  - Ardmore Learning Community" in text
    assert "Nothing needs a person." in text and "Nothing needs a person." in html
    assert "<li" in html
    context = {**CASES["digest"][1], "since": None}
    _subject, text, html = render(composer, "digest", context)
    assert "first digest" in text and "first digest" in html


def test_command_reply(composer):
    subject, text, html = render(composer, "command-reply")
    assert subject == "Your commands: 1 done, 1 refused"
    assert "award Ardmore Primary: Ardmore Primary School: invited" in flat(text)
    assert "#3 Ardmore High School" in flat(text) and "#3 Ardmore" in html
    assert '"name": "Ardmore Learning Community"' in text
    context = {**CASES["command-reply"][1], "authenticated": False,
               "problem": "mx.example.org says dmarc=fail", "done": []}
    subject, text, html = render(composer, "command-reply", context)
    assert subject == "Your commands were not carried out"
    assert "The reason: mx.example.org says dmarc=fail." in flat(text)
    assert "dmarc=fail" in html and "Learning Community" not in text


def test_text_and_html_say_the_same_things(composer):
    """Every prose paragraph of the text body appears, as words, in the
    HTML (lists and labelled fields are checked by the tests above)."""
    label = re.compile(r"^[A-Z][A-Za-z ]+( \(\d+\))?:( |$)")
    for name in NAMES:
        _subject, text, html = render(composer, name)
        plain = re.sub(r"<[^>]+>", " ", html)
        for entity, char in (("&#39;", "'"), ("&lt;", "<"), ("&gt;", ">"),
                             ("&#34;", '"'), ("&amp;", "&")):
            plain = plain.replace(entity, char)
        html_words = " ".join(plain.split())
        html_words = re.sub(r" ([.,;:)])", r"\1", html_words)
        html_words = html_words.replace("( ", "(")
        checked = 0
        for paragraph in text.split("\n\n"):
            if (not paragraph.strip() or paragraph[0].isspace()
                    or paragraph.startswith("-- ") or "\n---" in paragraph
                    or label.match(paragraph)
                    or not paragraph.rstrip().endswith((".", ":", ","))):
                continue
            words = " ".join(paragraph.split())
            assert words in html_words, (name, words)
            checked += 1
        assert checked >= 2, name
