"""Staff commands by email.

A member of staff (an address in `config.staff`) writes to the programme
address, one command a line, in plain English; case does not matter and
a full stop at the end is allowed:

    confirm nomination <cluster>
    rename cluster <cluster> to <new name>
    set council of <cluster> to <council>
    set status of <school> to <status>
    award <school>
    assign validator <validator's name or email> to <cluster>
    change validator of <cluster> to <validator's name or email>
    replace contact of <school> with <email, or Name <email>>
    accept <email> for <school>
    resend invitation to <school>
    send file of <cluster>

A school or cluster is named by its name, in full or by enough of its
words to pick out one (`kirkton` for Kirkton Primary School), or by its
number, `#12` (as the reply and the digest show them). A name that fits
more than one is refused, with the candidates listed. Statuses are those
of the export (`self_review_complete`, or in words: `self-review
complete`).

Only the writer's own new text is read: quoted history, the signature
(from a `-- ` line, or a sign-off such as "Kind regards" with a name
under it) and footers are never taken as commands. A message is a
command message when at least one of its lines is a command; in one, a
line that starts like a command but is not one is refused as not
understood, and other lines (a greeting, "thanks") are passed over.

A command is obeyed only when the message is authenticated: a trusted
receiving server (`[security] authserv_ids`) says DMARC or DKIM passed
for the sender's domain (authres.py), or the message carries the signed
reference mailbot gave that member of staff (tokens.py). Each command is
checked whole before anything changes, so a refused command changes
nothing. The writer gets one reply listing what was done and what was
refused and why; a message that is not authenticated gets only a short
refusal, to the staff address itself, and is set aside. Each command and
its outcome goes into the history, where the digest finds refusals.
"""

from __future__ import annotations

import difflib
import email.utils
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from tinydb.table import Document

from mailbot import authres, report
from mailbot.compose import Draft
from mailbot.councils import canonical_council
from mailbot.enrolment import _nomination_from_dict, _nomination_to_dict
from mailbot.mail import Incoming
from mailbot.outcome import HANDLED, SET_ASIDE, Outcome
from mailbot.quoting import new_text
from mailbot.store import (
    ACTIVE,
    ALREADY_AWARDED,
    AWARDED,
    COMPLETE_STATUSES,
    INCOMPLETE,
    INVITED,
    SELF_REVIEW_COMPLETE,
    VALIDATOR_ASSIGNED,
    VISIT_REQUESTED,
    stamp,
)
from mailbot.tokens import Reference
from mailbot.views import cluster_view, school_view, schools_view

if TYPE_CHECKING:
    from mailbot.workflow import Workflow

log = logging.getLogger(__name__)

T = TypeVar("T")

KIND = "command"
# History events: each command done or refused, and each command message
# that was not authenticated.
DONE_EVENT = "command"
REFUSED_EVENT = "command-refused"
UNAUTHENTICATED_EVENT = "command-unauthenticated"
REFUSAL_EVENTS = (REFUSED_EVENT, UNAUTHENTICATED_EVENT)

SCHOOL_STATUSES = (INVITED, SELF_REVIEW_COMPLETE, VISIT_REQUESTED, AWARDED,
                   ALREADY_AWARDED)
# How many candidates a refusal for an ambiguous name lists.
CANDIDATES = 6
# The longest line read as a command.
LINE_CHARS = 300

_GRAMMAR: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
        ("confirm", r"confirm (?:the )?nomination (?:of |for )?(?P<cluster>.+)"),
        ("rename", r"rename (?:the )?cluster (?P<cluster>.+?) to (?P<name>.+)"),
        ("council", (r"set (?:the )?(?:council|local authority) (?:of|for) "
                    r"(?P<cluster>.+) to (?P<council>[^#]+)")),
        ("status", (r"set (?:the )?status (?:of|for) (?P<school>.+) "
                   r"to (?P<status>[a-z_ -]+)")),
        ("award", r"award (?P<school>.+)"),
        ("assign", (r"(?:assign|give) (?:the )?validator (?P<validator>.+?) "
                   r"to (?P<cluster>.+)")),
        ("assign", (r"(?:change|set) (?:the )?validator (?:of|for) "
                   r"(?P<cluster>.+) to (?P<validator>[^#]+)")),
        ("contact", (r"replace (?:the )?contact (?:of|for|at) (?P<school>.+) "
                    r"with (?P<contact>[^#]+@[^#]+)")),
        ("accept", (r"accept (?P<address>\S+@\S+) (?:for|as contact (?:of|for)) "
                   r"(?P<school>.+)")),
        ("resend", r"resend (?:the )?invitation (?:to|for|of) (?P<school>.+)"),
        ("file", (r"send (?:me )?(?:the )?(?:cluster )?file (?:of|for) "
                 r"(?:the )?(?:cluster )?(?P<cluster>.+)")),
    ))
# The first words of the commands: a line starting so, in a command
# message, that is no command is refused rather than passed over.
_VERBS = re.compile(r"(?:confirm|rename|set|award|assign|give|change|replace"
                    r"|accept|resend|send)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    line: str                  # as written, tidied
    name: str                  # "" if the line is not understood
    args: dict[str, str] = field(default_factory=dict)


def _tidy(line: str) -> str:
    line = " ".join(line.replace("\u00a0", " ").split())
    return line.strip("*_ ").rstrip(".!;,").strip()


def parse_line(line: str) -> Command | None:
    """The command a line holds, or None if the line is no command."""
    text = _tidy(line)
    if not text or len(text) > LINE_CHARS:
        return None
    for name, pattern in _GRAMMAR:
        found = pattern.fullmatch(text)
        if found:
            args = {k: v.strip() for k, v in found.groupdict().items() if v}
            return Command(text, name, args)
    return None


def command_lines(text: str) -> list[Command]:
    """The commands in the writer's own text; a line that starts like a
    command and is not one is there too, unnamed, if there is at least one
    real command (otherwise it is ordinary mail, and none is returned)."""
    found: list[Command] = []
    for line in new_text(text).splitlines():
        command = parse_line(line)
        if command is not None:
            found.append(command)
        elif _VERBS.match(_tidy(line)) and len(_tidy(line)) <= LINE_CHARS:
            found.append(Command(_tidy(line), ""))
    return found if any(c.name for c in found) else []


def is_command_mail(mail: Incoming, staff: Sequence[str]) -> bool:
    """Staff mail with at least one command in the writer's own text."""
    return mail.sender.email in staff and bool(command_lines(mail.text))


class Refused(Exception):
    """A command that cannot be done, and why (said to the writer)."""


@dataclass
class _Reply:
    done: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    files: list[dict[str, str]] = field(default_factory=list)


class Commands:
    def __init__(self, flow: Workflow) -> None:
        self.flow = flow
        self.store = flow.store
        self.config = flow.config

    # -- the message ---------------------------------------------------

    def handle(self, mail: Incoming) -> Outcome:
        sender = mail.sender.email
        commands = command_lines(mail.text)
        ok, why = self.authenticate(mail)
        now = self.flow.clock.now()
        if not ok:
            listed = "; ".join(f'"{c.line}"' for c in commands)
            self.store.add_event(now, UNAUTHENTICATED_EVENT,
                                 message_id=mail.message_id,
                                 detail=f"{sender}: {why}; not done: {listed}")
            self._queue_reply(mail, "command-refusal", {
                "authenticated": False, "problem": why, "done": [],
                "refused": [{"command": c.line, "reason": "not done"}
                            for c in commands],
                "files": []})
            return Outcome(SET_ASIDE, KIND,
                           f"staff commands not authenticated: {why}")

        reply = _Reply()
        for command in commands:
            self._run(mail, command, reply)
        self._queue_reply(mail, "command-reply", {
            "authenticated": True, "problem": None, "done": reply.done,
            "refused": reply.refused, "files": reply.files})
        return Outcome(HANDLED, KIND, f"staff commands ({why}): "
                       f"{len(reply.done)} done, {len(reply.refused)} refused")

    def authenticate(self, mail: Incoming) -> tuple[bool, str]:
        sender = mail.sender.email
        texts = [mail.subject, *mail.thread_ids,
                 *(a.email for a in (*mail.to, *mail.cc))]
        if Reference(address=sender) in self.flow.tokens.found(texts, sender):
            return True, "answers mail sent to this address"
        return authres.authenticated(mail, self.config.security.authserv_ids,
                                     sender)

    def _run(self, mail: Incoming, command: Command, reply: _Reply) -> None:
        now = self.flow.clock.now()
        sender = mail.sender.email
        action = self._actions().get(command.name)
        try:
            if action is None:
                raise Refused("not understood (see the list of commands below)")
            said, cluster_id, school_id = action(mail, command.args, reply)
        except Refused as refused:
            reason = str(refused)
            reply.refused.append({"command": command.line, "reason": reason})
            self.store.add_event(now, REFUSED_EVENT, message_id=mail.message_id,
                                 detail=f'{sender}: "{command.line}": {reason}')
            return
        reply.done.append({"command": command.line, "result": said})
        self.store.add_event(now, DONE_EVENT, cluster_id=cluster_id,
                             school_id=school_id, message_id=mail.message_id,
                             detail=f'{sender}: "{command.line}": {said}')

    def _queue_reply(self, mail: Incoming, template: str,
                     context: dict[str, Any]) -> None:
        # To the staff address itself, never a Reply-To: a forger learns
        # nothing, and staff learn that their mail is not authenticated.
        self.flow.queue(Draft(
            key=f"{template}:{mail.ref}", kind="command-reply",
            template="command-reply", to=(mail.sender.email,),
            reply_to_id=mail.message_id, references=mail.references,
            context={"commands_help": HELP, **context}))

    def _actions(self) -> dict[str, Callable[
            [Incoming, dict[str, str], _Reply],
            tuple[str, int | None, int | None]]]:
        return {"confirm": self._confirm, "rename": self._rename,
                "council": self._council, "status": self._status,
                "award": self._award, "assign": self._assign,
                "contact": self._contact, "accept": self._accept,
                "resend": self._resend, "file": self._file}

    # -- finding things ------------------------------------------------

    def cluster(self, words: str) -> Document:
        clusters = self.store.all_clusters()
        return _one("cluster", words, clusters,
                    lambda c: str(c.get("name") or ""),
                    lambda c: _label(c.get("name") or "(no name yet)", c.doc_id))

    def school(self, words: str) -> Document:
        names = {c.doc_id: str(c.get("name") or "") for c in self.store.all_clusters()}
        return _one("school", words, self.store.all_schools(),
                    lambda s: str(s["name"]),
                    lambda s: _label(s["name"], s.doc_id)
                    + f" in {names.get(s['cluster_id']) or 'an unnamed cluster'}")

    # -- the commands --------------------------------------------------

    def _confirm(self, mail: Incoming, args: dict[str, str],
                 reply: _Reply) -> tuple[str, int | None, int | None]:
        cluster = self.cluster(args["cluster"])
        if cluster["status"] != INCOMPLETE:
            raise Refused(f"{_name(cluster)} is already confirmed")
        draft = cluster.get("draft") or {}
        missing = _essentials_missing(draft)
        if missing:
            raise Refused(f"{_name(cluster)} cannot start without "
                          + "; ".join(missing))
        nomination = _nomination_from_dict(draft)
        # The enrolment's own activation: acknowledgment, welcome, council
        # notices and invitations, as for a nomination complete at once.
        self.flow.enrolment._activate(cluster.doc_id, nomination, mail)
        return ((f"{_name(cluster)} confirmed with {len(nomination.schools)} "
                "schools; the lead, the council and the schools are told"),
                cluster.doc_id, None)

    def _rename(self, mail: Incoming, args: dict[str, str],
                reply: _Reply) -> tuple[str, int | None, int | None]:
        cluster = self.cluster(args["cluster"])
        new = " ".join(args["name"].split())
        others = [c for c in self.store.clusters_named(new)
                  if c.doc_id != cluster.doc_id]
        if others:
            raise Refused(f"another cluster is already called {new}: "
                          + _label(new, others[0].doc_id))
        old = _name(cluster)
        fields: dict[str, Any] = {"name": new}
        if cluster.get("draft"):
            fields.update(_draft_with(cluster, cluster_name=new))
        self.store.update_cluster(cluster.doc_id, fields)
        return f"{old} is now called {new}", cluster.doc_id, None

    def _council(self, mail: Incoming, args: dict[str, str],
                 reply: _Reply) -> tuple[str, int | None, int | None]:
        cluster = self.cluster(args["cluster"])
        council = canonical_council(args["council"])
        if council is None:
            raise Refused(f"{args['council']} is not one of Scotland's councils")
        if cluster.get("local_authority") == council:
            return (f"{_name(cluster)} was already in {council}",
                    cluster.doc_id, None)
        fields: dict[str, Any] = {"local_authority": council}
        if cluster.get("draft"):
            fields.update(_draft_with(cluster, local_authority=council))
        self.store.update_cluster(cluster.doc_id, fields)
        return ((f"{_name(cluster)} is now in {council} (no notice is sent "
                "to the council)"), cluster.doc_id, None)

    def _status(self, mail: Incoming, args: dict[str, str],
                reply: _Reply) -> tuple[str, int | None, int | None]:
        school = self.school(args["school"])
        wanted = "_".join(args["status"].lower().replace("-", " ").split())
        if wanted in ("complete", "self_review_completed"):
            wanted = SELF_REVIEW_COMPLETE
        if wanted not in SCHOOL_STATUSES:
            raise Refused(f"{args['status']} is not a school status (one of "
                          + ", ".join(SCHOOL_STATUSES) + ")")
        return self._set_status(school, wanted)

    def _award(self, mail: Incoming, args: dict[str, str],
               reply: _Reply) -> tuple[str, int | None, int | None]:
        return self._set_status(self.school(args["school"]), AWARDED)

    def _set_status(self, school: Document, status: str
                    ) -> tuple[str, int | None, int | None]:
        now = self.flow.clock.now()
        if school["status"] == status:
            return (f"{school['name']} was already {_words(status)}",
                    school["cluster_id"], school.doc_id)
        fields: dict[str, Any] = {"status": status}
        if status == SELF_REVIEW_COMPLETE and not school.get("completed_at"):
            fields["completed_at"] = stamp(now)
        if status == AWARDED:
            fields["awarded_at"] = stamp(now)
        self.store.update_school(school.doc_id, fields)
        said = (f"{school['name']}: {_words(school['status'])} "
                f"→ {_words(status)}")
        if status in COMPLETE_STATUSES and \
                self.flow.assign_validator_if_ready(school["cluster_id"]):
            cluster = self.store.cluster(school["cluster_id"])
            said += (f"; every school is complete, and {cluster['validator']['name']}"
                     " is assigned as validator")
        return said, school["cluster_id"], school.doc_id

    def _assign(self, mail: Incoming, args: dict[str, str],
                reply: _Reply) -> tuple[str, int | None, int | None]:
        cluster = self.cluster(args["cluster"])
        pool = list(self.config.validators)
        wanted = args["validator"].strip()
        address = email.utils.parseaddr(wanted)[1].lower()
        by_email = [v for v in pool if address and v.email == address]
        chosen = by_email[0] if by_email else _one(
            "validator", wanted, pool, lambda v: v.name,
            lambda v: f"{v.name} <{v.email}>")
        council = str(cluster.get("local_authority") or "")
        if cluster["status"] == INCOMPLETE:
            raise Refused(f"{_name(cluster)} is not confirmed yet")
        if council in chosen.exclude_councils:
            raise Refused(f"{chosen.name} does not validate clusters in "
                          f"{council} (the config's exclude_councils)")
        unfinished = [s for s in self.store.schools_of(cluster.doc_id)
                      if s["status"] not in COMPLETE_STATUSES]
        if cluster["status"] == ACTIVE and unfinished:
            raise Refused(f"{len(unfinished)} of {_name(cluster)}'s schools "
                          "have not finished the self-review; a validator is "
                          "assigned when they have")
        before = cluster.get("validator")
        if before and before.get("email") == chosen.email:
            return (f"{chosen.name} was already {_name(cluster)}'s validator",
                    cluster.doc_id, None)
        now = self.flow.clock.now()
        validator = {"name": chosen.name, "email": chosen.email}
        self.store.update_cluster(cluster.doc_id, {
            "status": VALIDATOR_ASSIGNED, "validator": validator,
            "validator_assigned_at": stamp(now),
            "ready_at": cluster.get("ready_at") or stamp(now)})
        self.store.add_event(now, "validator-assigned", cluster_id=cluster.doc_id,
                             detail=f"{chosen.email} (by staff)")
        view = cluster_view(cluster)
        key = f"{cluster.doc_id}:{chosen.email}:{mail.ref}"
        self.flow.queue(Draft(
            key=f"validator-assignment:{key}", kind="validator-assignment",
            template="validator-assignment", to=(chosen.email,),
            cluster_id=cluster.doc_id,
            context={"validator": validator, "cluster": view,
                     "schools": schools_view(self.store, cluster.doc_id)}))
        self.flow.queue(Draft(
            key=f"validator-introduction:{key}", kind="validator-assignment",
            template="validator-introduction",
            to=(str(cluster["lead"]["email"]),), cluster_id=cluster.doc_id,
            context={"lead_name": view["lead_name"], "cluster": view,
                     "validator": validator}))
        was = f", in place of {before['name']}" if before else ""
        return ((f"{chosen.name} is {_name(cluster)}'s validator{was}; they and "
                "the lead are told"), cluster.doc_id, None)

    def _contact(self, mail: Incoming, args: dict[str, str],
                 reply: _Reply) -> tuple[str, int | None, int | None]:
        school = self.school(args["school"])
        name, address = email.utils.parseaddr(args["contact"])
        address = address.lower()
        if not _plausible(address):
            raise Refused(f"{args['contact']} is not an email address")
        if address == school.get("contact_email"):
            return (f"{address} was already the contact of {school['name']}",
                    school["cluster_id"], school.doc_id)
        fields: dict[str, Any] = {"contact_email": address,
                                  "undeliverable": self.store.is_undeliverable(address)}
        if name.strip():
            fields["contact_name"] = " ".join(name.split())
        old = school.get("contact_email") or "no one"
        self.store.update_school(school.doc_id, fields)
        self.store.add_event(self.flow.clock.now(), "contact-replaced",
                             cluster_id=school["cluster_id"],
                             school_id=school.doc_id, message_id=mail.message_id,
                             detail=f"{old} → {address} (by staff)")
        return ((f"{school['name']}'s contact is now {address} (was {old}); "
                "to send them the invitation, write "
                f"\"resend invitation to #{school.doc_id}\""),
                school["cluster_id"], school.doc_id)

    def _accept(self, mail: Incoming, args: dict[str, str],
                reply: _Reply) -> tuple[str, int | None, int | None]:
        school = self.school(args["school"])
        address = args["address"].strip("<>.,").lower()
        if not _plausible(address):
            raise Refused(f"{args['address']} is not an email address")
        try:
            said = self.flow.accept_contact(school.doc_id, address,
                                            mail.sender.email)
        except (KeyError, ValueError) as exc:
            raise Refused(str(exc) or type(exc).__name__) from exc
        return said, school["cluster_id"], school.doc_id

    def _resend(self, mail: Incoming, args: dict[str, str],
                reply: _Reply) -> tuple[str, int | None, int | None]:
        school = self.school(args["school"])
        address = str(school.get("contact_email") or "")
        if not address:
            raise Refused(f"{school['name']} has no contact address")
        cluster = self.store.cluster(school["cluster_id"])
        if school["status"] == ALREADY_AWARDED:
            template = "invitation-awarded"
        elif school.get("phase") == "secondary":
            template = "invitation-secondary"
        else:
            template = "invitation-primary"
        now = self.flow.clock.now()
        queued = self.flow.queue(Draft(
            key=f"invitation:{school.doc_id}:again:{mail.ref}",
            kind="invitation", template=template, to=(address,),
            not_before=now, cluster_id=cluster.doc_id, school_id=school.doc_id,
            context={"school": school_view(school),
                     "cluster": cluster_view(cluster),
                     "deadline": date.fromisoformat(school["deadline"])}))
        if not queued:
            raise Refused(f"the invitation to {address} could not be queued "
                          "(see the log)")
        note = (" (that address has bounced before)"
                if self.store.is_undeliverable(address) else "")
        return (f"invitation to {school['name']} sent again to {address}{note}",
                cluster.doc_id, school.doc_id)

    def _file(self, mail: Incoming, args: dict[str, str],
              reply: _Reply) -> tuple[str, int | None, int | None]:
        cluster = self.cluster(args["cluster"])
        ids = sorted(c.doc_id for c in self.store.all_clusters())
        exported = report.export(self.store)["clusters"][ids.index(cluster.doc_id)]
        reply.files.append({"title": f"{_name(cluster)} (#{cluster.doc_id})",
                            "text": json.dumps(exported, indent=2,
                                               ensure_ascii=False)})
        return ((f"the file of {_name(cluster)} is below, as mailbot export "
                "writes it"), cluster.doc_id, None)


HELP = [
    "confirm nomination CLUSTER",
    "rename cluster CLUSTER to NEW NAME",
    "set council of CLUSTER to COUNCIL",
    "set status of SCHOOL to STATUS",
    "award SCHOOL",
    "assign validator NAME OR EMAIL to CLUSTER",
    "replace contact of SCHOOL with EMAIL",
    "accept EMAIL for SCHOOL",
    "resend invitation to SCHOOL",
    "send file of CLUSTER",
]


# -- helpers ---------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def _words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("'", "").replace("\u2019", ""))


def _one(what: str, words: str, items: Sequence[T],
         name: Callable[[T], str], label: Callable[[T], str]) -> T:
    """The one item that `words` names: `#12` (a record's number), the
    whole name, or words each of which starts a word of its name (in
    order or not); failing those, a name within a typo or two. Refused if
    none fits or more than one does."""
    words = words.strip()
    if re.fullmatch(r"#\d+", words):
        number = int(words[1:])
        for item in items:
            if isinstance(item, Document) and item.doc_id == number:
                return item
        raise Refused(f"there is no {what} #{number}")
    wanted = _words_of(words)
    if not wanted:
        raise Refused(f"no {what} named")
    exact = [i for i in items if _words_of(name(i)) == wanted]
    if len(exact) == 1:
        return exact[0]
    found = exact or [i for i in items if all(
        any(w.startswith(q) for w in _words_of(name(i))) for q in wanted)]
    if not found:
        joined = " ".join(wanted)
        close = difflib.get_close_matches(
            joined, [" ".join(_words_of(name(i))) for i in items], n=2,
            cutoff=0.85)
        found = [i for i in items if " ".join(_words_of(name(i))) in close]
    if len(found) == 1:
        return found[0]
    if not found:
        raise Refused(f"no {what} is called {words}")
    listed = "; ".join(label(i) for i in found[:CANDIDATES])
    if len(found) > CANDIDATES:
        listed += f" and {len(found) - CANDIDATES} more"
    hint = (f"; name one by its number, such as #{found[0].doc_id}"
            if isinstance(found[0], Document) else "")
    raise Refused(f"{words} could be any of {len(found)}: {listed}{hint}")


def _label(name: Any, doc_id: int) -> str:
    return f"#{doc_id} {name}"


def _name(cluster: Document) -> str:
    return str(cluster.get("name") or f"cluster #{cluster.doc_id}")


def _words(status: str) -> str:
    return report.STATUS_LABELS.get(status, status.replace("_", " "))


def _plausible(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain and not any(
        c.isspace() or c in "<>,;\"" for c in address))


def _essentials_missing(draft: dict[str, Any]) -> list[str]:
    """What a nomination cannot start without, even when staff vouch for
    it: whom to tell and whom to invite. A missing phase or contact name
    is not among them (the invitation is worded for a primary school and
    greets the contact as colleague)."""
    missing = []
    if not draft.get("cluster_name"):
        missing.append("the cluster's name (rename cluster ... to ...)")
    if not draft.get("local_authority"):
        missing.append("the local authority (set council of ... to ...)")
    if not draft.get("lead_email"):
        missing.append("the lead contact's email address")
    schools = draft.get("schools") or []
    if not schools:
        missing.append("at least one school")
    for school in schools:
        if not school.get("contact_email"):
            missing.append(f"an email address for {school.get('name')}")
    return missing


def _draft_with(cluster: Document, **changes: Any) -> dict[str, Any]:
    """The fields of an unconfirmed cluster whose nomination draft takes
    `changes`: the draft and what is still missing."""
    draft = {**(cluster.get("draft") or {}), **changes}
    nomination = _nomination_from_dict(draft)
    return {"draft": _nomination_to_dict(nomination),
            "missing": nomination.missing()}
