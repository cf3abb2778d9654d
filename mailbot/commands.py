"""Staff commands by email.

A member of staff (an address in `config.staff`) writes to the programme
address, one command a line, in plain English; case does not matter and
a full stop at the end is allowed:

    confirm nomination <cluster>
    rename cluster <cluster> to <new name>
    set council of <cluster> to <council>
    set status of <school> to <status>
    award <school>
    not yet <school>: <the validator's notes>
    assign validator <validator's name or email> to <cluster>
    change validator of <cluster> to <validator's name or email>
    replace contact of <school> with <email, or Name <email>>
    accept <email> for <school>
    resend invitation to <school>
    clear bounce for <email>
    send file of <cluster>

A school or cluster is named by its name, in full or by enough of its
words to pick out one (`kirkton` for Kirkton Primary School), or by its
number, `#12` (as the reply and the digest show them). A name that fits
more than one is refused, with the candidates listed. Statuses are those
of the export (`self_review_complete`, or in words: `self-review
complete`).

Only the writer's own new text is read (`own_text`): the message's
first text/plain body, or its first text/html one made text when there
is no plain one, never an attachment, an attached message (a forward
"as attachment") or a later inline part; in HTML, neither quoted text
(`<blockquote>`) nor what a reader never sees (`display:none`,
`visibility:hidden`, `hidden`, styles and scripts). Of that text, quoted
history, the signature (from a `-- ` line, or a sign-off such as "Kind
regards" with a name under it) and footers are never taken as commands.
A courtesy before or after a command is allowed ("Please award #3.",
"Could you award Kirkton, please?"). A message is a command message when
at least one of its lines is a command; in one, a line that looks like
a failed command (it starts with a command's first word or a typo of
one, or names a record by its number, `#12`) is refused as not
understood, and other lines (a greeting, "thanks") are passed over.

A command is obeyed only when the message is authenticated:

- a trusted receiving server (`[security] authserv_ids`) says DMARC or
  DKIM passed for the sender's domain (authres.py). While a trusted
  server's Authentication-Results are there, they alone decide: a fail
  is refused, whatever else the message carries;
- or, only when no trusted server's Authentication-Results are there at
  all (Microsoft 365 names no server), the message answers (In-Reply-To
  or References) mail that mailbot sent to this same address in the last
  ANSWER_DAYS days, which carried that person's signed reference
  (tokens.py). A reference in the subject or in an address written to
  counts for nothing here: anyone Cc'd on a reply from staff sees those.

`award` (and `set status ... to awarded`) also congratulates the school,
copying the cluster's lead, with the message the validator's "awarded"
sends (results.congratulate); not a school that was a Digital School
before the programme (`already awarded`), for which it is a correction.

A sheet of self-review results attached to staff mail, for one school or
many, in one cluster or several, is taken too, with or without command
lines beside it (staff often send only the sheet): each school it names
gets its results, as a school's own are kept, and the reply lists what
was stored for each (and in which cluster) and what was not and why
(staffsheets.py); a sheet meant to hold results that gives none, or
cannot be read, is answered too. It needs the same proof as a command;
without it nothing is stored.

Each command is checked whole before anything changes, so a refused
command changes nothing. The writer gets one reply listing what was
done and what was refused and why, however many they sent that day; a
message that is not authenticated gets only a short refusal, to the
staff address itself (within the daily cap on replies), and is set
aside. Each command and its outcome goes into the history, where the
digest finds refusals.
"""

from __future__ import annotations

import difflib
import email.utils
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import Message
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, TypeVar

from tinydb.table import Document

from mailbot import authres, report, results, staffsheets
from mailbot.compose import UK, Draft
from mailbot.councils import canonical_council
from mailbot.enrolment import (
    invitation_template,
    nomination_from_dict,
    nomination_to_dict,
)
from mailbot.mail import HTML_LIMIT, TEXT_LIMIT, Incoming
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
from mailbot.supports import Supports
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
# How long mail that mailbot sent to a member of staff authenticates
# their answers to it, when no trusted server says anything: a
# Message-ID seen by someone Cc'd on a reply is of use for no longer.
ANSWER_DAYS = 30
# The deepest nesting of MIME parts searched for the writer's own text.
MIME_DEPTH = 12

_GRAMMAR: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE)) for name, pattern in (
        ("confirm", r"confirm (?:the )?nomination (?:of |for )?(?P<cluster>.+)"),
        ("rename", r"rename (?:the )?cluster (?P<cluster>.+?) to (?P<name>.+)"),
        ("council", (r"set (?:the )?(?:council|local authority) (?:of|for) "
                    r"(?P<cluster>.+) to (?P<council>[^#]+)")),
        ("status", (r"set (?:the )?status (?:of|for) (?P<school>.+) "
                   r"to (?P<status>[a-z_ -]+)")),
        ("award", r"award (?P<school>.+)"),
        ("notyet", (r"not yet (?:for )?(?P<school>[^:]+?)"
                    r"(?:\s*:\s*(?P<notes>.*))?")),
        ("assign", (r"(?:assign|give) (?:the )?validator (?P<validator>.+?) "
                   r"to (?P<cluster>.+)")),
        ("assign", (r"(?:change|set) (?:the )?validator (?:of|for) "
                   r"(?P<cluster>.+) to (?P<validator>[^#]+)")),
        ("contact", (r"replace (?:the )?contact (?:of|for|at) (?P<school>.+) "
                    r"with (?P<contact>[^#]+@[^#]+)")),
        ("accept", (r"accept (?P<address>\S+@\S+) (?:for|as contact (?:of|for)) "
                   r"(?P<school>.+)")),
        ("resend", r"resend (?:the )?invitation (?:to|for|of) (?P<school>.+)"),
        ("deliverable", (r"clear (?:the )?bounces? (?:of|for|on|from) "
                        r"(?P<address>\S+@\S+)")),
        ("file", (r"send (?:me )?(?:the )?(?:cluster )?file (?:of|for) "
                 r"(?:the )?(?:cluster )?(?P<cluster>.+)")),
    ))
# The first words of the commands: a line starting so, in a command
# message, that is no command is refused rather than passed over.
_VERBS = re.compile(r"(?:confirm|rename|set|award|not yet|assign|give|change"
                    r"|replace|accept|resend|clear|send)\b", re.IGNORECASE)
# First words of commands long enough that a word one typing slip away
# (a letter more, less, changed, or two swapped) is taken for a typo of
# one: "awrd", "acept". Shorter ones (set, give, send) have too many
# ordinary neighbours (get, let, sent).
_TYPO_VERBS = ("confirm", "rename", "award", "assign", "change", "replace",
               "accept", "resend")
# Ordinary words a slip away from one of those: never a typo.
_NOT_TYPOS = frozenset({"aware", "ward", "except", "charge", "chance",
                        "accent", "resent", "conform"})
_FIRST_WORD = re.compile(r"[a-z]+")
# A record named by its number.
_NUMBER = re.compile(r"#\d")
# Courtesies before a command: "Please", "Could you", "Kindly", ...
_POLITE = re.compile(r"(?:(?:please|kindly|(?:could|can|would|will) you)"
                     r"\b[ ,]*)+", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    line: str                  # as written, tidied
    name: str                  # "" if the line is not understood
    args: dict[str, str] = field(default_factory=dict)
    hint: str = ""             # not understood: the command it may be


def _tidy(line: str) -> str:
    line = " ".join(line.replace("\u00a0", " ").split())
    return line.strip("*_ ").rstrip(".!?;,").strip()


def _core(written: str) -> str:
    """A tidied line without the courtesies around a command: "Please
    award #1" and "Could you award #1, please" are "award #1"."""
    polite = _POLITE.match(written)
    text = written[polite.end():] if polite else written
    for tail in (", please", " please"):
        if text.lower().endswith(tail):
            text = text[:-len(tail)]
            break
    return text.rstrip(".!?;, ")


def parse_line(line: str) -> Command | None:
    """The command a line holds, or None if the line is no command."""
    written = _tidy(line)
    if not written or len(written) > LINE_CHARS:
        return None
    text = _core(written)
    for name, pattern in _GRAMMAR:
        found = pattern.fullmatch(text)
        if found:
            args = {k: v.strip() for k, v in found.groupdict().items() if v}
            return Command(written, name, args)
    return None


def _failed_command(line: str) -> Command | None:
    """A line that is no command but looks like a failed one (unnamed, with
    the command it may be a typo of), or None."""
    written = _tidy(line)
    if not written or len(written) > LINE_CHARS:
        return None
    text = _core(written)
    first = _FIRST_WORD.match(text.lower())
    typo = _typo_of(first.group(0)) if first else ""
    if typo or _VERBS.match(text) or _NUMBER.search(text):
        return Command(written, "", hint=typo)
    return None


def _typo_of(word: str) -> str:
    """The command's first word that `word` is a typing slip of, or ""."""
    if len(word) < 4 or word in _NOT_TYPOS:
        return ""
    for verb in _TYPO_VERBS:
        # "awarded", "changes": a word of its own, not a slip.
        if not word.startswith(verb) and _one_slip(word, verb):
            return verb
    return ""


def _one_slip(a: str, b: str) -> bool:
    """Whether `a` and `b` differ by one letter added, dropped or changed,
    or two neighbours swapped."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (
            a[i:i + 2] == b[i:i + 2][::-1] and a[i + 2:] == b[i + 2:])
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1:] == shorter[i:]


def command_lines(text: str) -> list[Command]:
    """The commands in the writer's own text; a line that looks like a
    failed command is there too, unnamed, if there is at least one real
    command (otherwise it is ordinary mail, and none is returned)."""
    found: list[Command] = []
    for line in new_text(text).splitlines():
        command = parse_line(line) or _failed_command(line)
        if command is not None:
            found.append(command)
    return found if any(c.name for c in found) else []


def mail_commands(mail: Incoming) -> list[Command]:
    """The commands of a message: those of its writer's own text."""
    return mail.once("commands.lines", lambda: command_lines(own_text(mail)))


def is_command_mail(mail: Incoming, staff: Sequence[str]) -> bool:
    """Staff mail with at least one command in the writer's own text, or
    with a sheet of self-review results attached, or one meant to hold
    them or that could not be read (staffsheets.py): staff often send the
    sheet with no word of command, and are told why nothing was stored."""
    return mail.sender.email in staff and (
        bool(mail_commands(mail)) or staffsheets.carries_results(mail))


# -- the writer's own text ---------------------------------------------------

def own_text(mail: Incoming) -> str:
    """What the writer wrote: the message's first text/plain body, or its
    first text/html one made text (`visible_text`) when it has no plain
    one. Never an attachment (a part with a filename or marked as one),
    an attached message or what comes after the first body."""
    return mail.once("commands.own_text", lambda: _own_text(mail.message))


def _own_text(message: Message) -> str:
    part = _body(message, 0)
    if part is None:
        return ""
    text = _decoded(part).replace("\r\n", "\n").replace("\r", "\n")
    if part.get_content_type() == "text/html":
        cut = len(text) > HTML_LIMIT
        text = visible_text(text[:HTML_LIMIT])
        if cut:  # the last line may be cut short
            text = text[:text.rstrip("\n").rfind("\n") + 1]
    if len(text) > TEXT_LIMIT:  # whole lines: half a command is none
        text = text[:text.rfind("\n", 0, TEXT_LIMIT) + 1]
    return text


def _body(part: Message, depth: int) -> Message | None:
    """The first part under `part` that holds the writer's text."""
    if depth > MIME_DEPTH or _attached(part) \
            or part.get_content_maintype() == "message":
        return None
    kind = part.get_content_type()
    if not part.is_multipart():
        return part if kind in ("text/plain", "text/html") else None
    subparts = [p for p in part.get_payload() if isinstance(p, Message)]
    if kind == "multipart/alternative":
        found = [b for b in (_body(p, depth + 1) for p in subparts)
                 if b is not None]
        plain = [b for b in found if b.get_content_type() == "text/plain"]
        return (plain or found)[0] if found else None
    for subpart in subparts:
        body = _body(subpart, depth + 1)
        if body is not None:
            return body
    return None


def _attached(part: Message) -> bool:
    try:
        return part.get_content_disposition() == "attachment" \
            or bool(part.get_filename())
    except (ValueError, LookupError, TypeError):
        return True  # a header that cannot be read is no body's


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    for codec in (charset, "utf-8", "cp1252"):
        try:
            return payload.decode(codec)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("latin-1")


def visible_text(html: str) -> str:
    """The text of HTML that a reader sees and that is the writer's own,
    one line per block: without quoted text (`<blockquote>`), what is
    hidden (`display:none`, `visibility:hidden`, the `hidden` attribute,
    Outlook's `mso-hide:all`) and styles and scripts. One pass over the
    tags; where a browser would end a hidden element early, this may drop
    more than it hides, never less."""
    reader = _VisibleText()
    reader.feed(html)
    reader.close()
    lines = (" ".join(line.split()) for line in "".join(reader.parts).split("\n"))
    return "\n".join(lines).strip("\n") + "\n"


class _VisibleText(HTMLParser):
    # Never shown, or quoted: what is inside them is dropped.
    DROPPED = frozenset({"blockquote", "style", "script", "head", "title",
                         "template"})
    # Elements that never hold anything (no end tag).
    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img",
                      "input", "link", "meta", "param", "source", "track",
                      "wbr"})
    BLOCKS = frozenset({"p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5",
                        "h6", "table", "ul", "ol", "pre", "hr", "dt", "dd"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []          # elements open, outermost first
        self.count: dict[str, int] = {}    # of each name in `open`
        self.dropping_from: int | None = None  # depth of the dropped element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]
                        ) -> None:
        if tag in self.VOID:
            if tag in ("br", "hr"):
                self._break()
            return
        if tag in self.BLOCKS:
            self._break()
        if self.dropping_from is None and (tag in self.DROPPED
                                           or _hidden(attrs)):
            self.dropping_from = len(self.open)
        self.open.append(tag)
        self.count[tag] = self.count.get(tag, 0) + 1

    # `<div hidden/>` opens a div, as a browser reads it.
    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if not self.count.get(tag):
            return  # nothing to end: a browser ignores it too
        while self.open:  # each element is ended once: linear in all
            ended = self.open.pop()
            self.count[ended] -= 1
            if ended == tag:
                break
        if self.dropping_from is not None \
                and len(self.open) <= self.dropping_from:
            self.dropping_from = None
        if tag in self.BLOCKS or tag in ("td", "th"):
            self._break(" " if tag in ("td", "th") else "\n")

    def handle_data(self, data: str) -> None:
        if self.dropping_from is not None:
            return
        if not self.count.get("pre"):  # a line break in HTML is a space
            words = " ".join(data.split())
            before = " " if data[:1].isspace() else ""
            after = " " if data[-1:].isspace() and words else ""
            data = before + words + after
        self.parts.append(data)

    def _break(self, what: str = "\n") -> None:
        if self.dropping_from is None:
            self.parts.append(what)


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden":
            return True
        if name != "style" or not value:
            continue
        for declaration in value.lower().split(";"):
            prop, _, setting = declaration.partition(":")
            prop = prop.strip()
            setting = setting.replace("!important", "").strip()
            if (prop, setting) in (("display", "none"), ("mso-hide", "all"),
                                   ("visibility", "hidden"),
                                   ("visibility", "collapse")):
                return True
    return False


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
        commands = mail_commands(mail)
        sheets = staffsheets.sheets_of(mail)
        ok, why = self.authenticate(mail)
        now = self.flow.clock.now()
        if not ok:
            lines = [c.line for c in commands] + [
                f"the results in the sheet {s.shown}" for s in sheets
                if s.taken]
            listed = "; ".join(f'"{line}"' for line in lines)
            self.store.add_event(now, UNAUTHENTICATED_EVENT,
                                 message_id=mail.message_id,
                                 detail=f"{sender}: {why}; not done: {listed}")
            self._queue_reply(mail, "command-refusal", {
                "authenticated": False, "problem": why, "done": [],
                "refused": [{"command": line, "reason": "not done"}
                            for line in lines],
                "files": []})
            return Outcome(SET_ASIDE, KIND,
                           f"staff commands not authenticated: {why}")

        reply = _Reply()
        for command in commands:
            self._run(mail, command, reply)
        stored = self._take_sheets(mail, reply) if sheets else None
        self._queue_reply(mail, "command-reply", {
            "authenticated": True, "problem": None, "done": reply.done,
            "refused": reply.refused, "files": reply.files})
        summary = (f"staff commands ({why}): {len(reply.done)} done, "
                   f"{len(reply.refused)} refused")
        if stored is not None:
            summary += (f"; results from a sheet stored for {stored[0]} "
                        f"schools, {stored[1]} not")
        return Outcome(HANDLED, KIND, summary)

    def _take_sheets(self, mail: Incoming, reply: _Reply) -> tuple[int, int]:
        """The results in the sheets the mail carries, kept for each school
        named (staffsheets.py) and listed in the reply; what was not kept
        goes into the history as one refusal a sheet, for the digest. How
        many schools' results were stored, and how many entries (rows,
        names or sheets) not."""
        sender = mail.sender.email
        stored = refused = 0
        not_kept: dict[str, list[staffsheets.Taken]] = {}
        for taken in staffsheets.take(self.flow, mail, sender):
            if taken.stored:
                stored += 1
                reply.done.append({"command": taken.what, "result": taken.said})
                continue
            refused += taken.count
            reply.refused.append({"command": taken.what, "reason": taken.said})
            not_kept.setdefault(taken.sheet, []).append(taken)
        for sheet, entries in not_kept.items():
            said, cluster_id, school_id = staffsheets.not_kept(entries)
            self.store.add_event(
                self.flow.clock.now(), REFUSED_EVENT, cluster_id=cluster_id,
                school_id=school_id, message_id=mail.message_id,
                detail=f"{sender}: the sheet {sheet or '(no name)'}: {said}")
        return stored, refused

    def authenticate(self, mail: Incoming) -> tuple[bool, str]:
        """Whether the message is the sender's own, and why (or why not)."""
        sender = mail.sender.email
        trusted = self.config.security.authserv_ids
        block = authres.block_of(mail, trusted)
        if block:
            # A trusted server has checked this message: its word decides,
            # and nothing the message carries overrules a fail.
            return authres.verdict(block, sender)
        oldest = self.flow.clock.now() - timedelta(days=ANSWER_DAYS)
        answered = authres.answered(self.store, self.flow.tokens, mail,
                                    oldest=oldest)
        if answered is not None:
            return True, (f"answers mail sent to this address "
                          f"({answered.get('kind')}, "
                          f"{str(answered.get('created_at'))[:10]})")
        checked = ("no Authentication-Results from a trusted server" if trusted
                   else "no receiving server is trusted ([security] "
                   "authserv_ids is empty)")
        return False, (f"{checked}, and it answers no mail sent to this "
                       f"address in the last {ANSWER_DAYS} days")

    def _run(self, mail: Incoming, command: Command, reply: _Reply) -> None:
        now = self.flow.clock.now()
        sender = mail.sender.email
        action = self._actions().get(command.name)
        try:
            if action is None:
                maybe = (f'; did you mean "{command.hint} ..."?'
                         if command.hint else "")
                raise Refused(f"not understood{maybe} (see the list of "
                              "commands below)")
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
        # Every authenticated command message is answered, however many
        # came that day (the answer still counts towards the daily cap on
        # replies, which holds for refusals).
        self.flow.queue(Draft(
            key=f"{template}:{mail.ref}", kind="command-reply",
            template="command-reply", to=(mail.sender.email,),
            reply_to_id=mail.message_id, references=mail.references,
            context={"commands_help": HELP, **context},
            exempt_from_reply_limit=bool(context.get("authenticated"))))

    def _actions(self) -> dict[str, Callable[
            [Incoming, dict[str, str], _Reply],
            tuple[str, int | None, int | None]]]:
        return {"confirm": self._confirm, "rename": self._rename,
                "council": self._council, "status": self._status,
                "award": self._award, "notyet": self._not_yet,
                "assign": self._assign,
                "contact": self._contact, "accept": self._accept,
                "resend": self._resend, "deliverable": self._deliverable,
                "file": self._file}

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
        nomination = nomination_from_dict(draft)
        # The enrolment's own activation: acknowledgment, welcome, council
        # notices and invitations, as for a nomination complete at once.
        self.flow.enrolment.activate(cluster.doc_id, nomination, mail)
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
        return self._set_status(mail, school, wanted)

    def _award(self, mail: Incoming, args: dict[str, str],
               reply: _Reply) -> tuple[str, int | None, int | None]:
        return self._set_status(mail, self.school(args["school"]), AWARDED)

    def _not_yet(self, mail: Incoming, args: dict[str, str],
                 reply: _Reply) -> tuple[str, int | None, int | None]:
        """A visit's outcome, not yet, recorded as the validator's answer
        is (results.record_outcome): the school is told with the notes."""
        school = self.school(args["school"])
        if school["status"] not in (VISIT_REQUESTED, SELF_REVIEW_COMPLETE):
            raise Refused(f"{school['name']} is {_words(school['status'])}: "
                          "not yet is the outcome of a validation visit")
        notes = (args.get("notes") or "").strip()
        results.record_outcome(
            self.flow, school, results.NOT_YET, notes, by=mail.sender.email,
            key=f"{mail.ref}:{school.doc_id}", message_id=mail.message_id)
        told = "the school is told" + (" with the notes" if notes else
                                       " (no notes were given)")
        return (f"{school['name']}: not yet; back to self-review complete; {told}",
                school["cluster_id"], school.doc_id)

    def _set_status(self, mail: Incoming, school: Document, status: str
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
        if status == AWARDED and school["status"] == ALREADY_AWARDED:
            # A correction: it held the status before the programme.
            said += "; no congratulations, as it was a Digital School already"
        elif status == AWARDED:
            # As when the validator writes "awarded" (results.py).
            if results.congratulate(
                    self.flow, self.store.school(school.doc_id),
                    f"award-congratulations:{mail.ref}:{school.doc_id}"):
                said += "; the school is congratulated"
            else:
                said += "; no congratulations could be sent (no contact address)"
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
        Supports(self.flow).validator_changed(cluster.doc_id)
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
        waiting = [o for o in self.store.unsent_outgoing()
                   if o.get("kind") == "invitation"
                   and o.get("school_id") == school.doc_id
                   and address in o.get("to", ())]
        if waiting:
            # Not sent yet (it waits for working hours, or for the server):
            # a second would only arrive beside it.
            try:
                goes = _when(datetime.fromisoformat(str(waiting[0]["not_before"])))
            except ValueError:
                goes = "at the next send"
            said = (f"{school['name']}'s invitation to {address} has not "
                    f"gone yet: it goes {goes}; none added")
            return said, cluster.doc_id, school.doc_id
        template = invitation_template(school)
        now = self.flow.clock.now()
        # Invitations go out in working hours, UK time, not on holidays,
        # whenever staff ask for one again (enrolment.py does the same).
        when = self.flow.hours.next_working(now, cluster.get("local_authority"))
        queued = self.flow.queue(Draft(
            key=f"invitation:{school.doc_id}:again:{mail.ref}",
            kind="invitation", template=template, to=(address,),
            not_before=when, cluster_id=cluster.doc_id, school_id=school.doc_id,
            context={"school": school_view(self.store, school),
                     "cluster": cluster_view(cluster),
                     "deadline": date.fromisoformat(school["deadline"])}))
        if not queued:
            raise Refused(f"the invitation to {address} could not be queued "
                          "(see the log)")
        note = (" (that address has bounced before)"
                if self.store.is_undeliverable(address) else "")
        sent = "sent again" if when <= now else (
            f"to go again, in working hours ({_when(when)}),")
        return (f"invitation to {school['name']} {sent} to {address}{note}",
                cluster.doc_id, school.doc_id)

    def _deliverable(self, mail: Incoming, args: dict[str, str],
                     reply: _Reply) -> tuple[str, int | None, int | None]:
        address = args["address"].strip("<>.,").lower()
        if not _plausible(address):
            raise Refused(f"{args['address']} is not an email address")
        school = next(iter(self.store.schools_with_contact(address)), None)
        where = (school["cluster_id"], school.doc_id) if school else (None, None)
        cleared = self.flow.deliverable_again(
            address, mail.message_id, f"cleared by {mail.sender.email}")
        said = ("is no longer marked undeliverable: mail to it goes again"
                if cleared else "was not marked undeliverable")
        return f"{address} {said}", *where

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
    "not yet SCHOOL: NOTES",
    "assign validator NAME OR EMAIL to CLUSTER",
    "replace contact of SCHOOL with EMAIL",
    "accept EMAIL for SCHOOL",
    "resend invitation to SCHOOL",
    "clear bounce for EMAIL",
    "send file of CLUSTER",
]


# -- helpers ---------------------------------------------------------------

def _when(moment: datetime) -> str:
    """"Monday 18 January at 08:30", UK time."""
    at = moment.astimezone(UK)
    return f"{at:%A} {at.day} {at:%B at %H:%M}"


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
    nomination = nomination_from_dict(draft)
    return {"draft": nomination_to_dict(nomination),
            "missing": nomination.missing()}
