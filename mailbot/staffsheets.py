"""Self-review results for several schools, in a sheet staff attach.

A member of staff may attach to their mail to the programme address a
CSV or XLSX sheet with the self-review results of several schools, of
one cluster or of many: one row per school with a column per criterion,
or one row per school and criterion with a percentage or the counts of
statements addressed, partially addressed and not addressed
(selfreview.py reads both, and gives the results by school name as
written). commands.py takes such mail as it takes commands, with the
same proof that it is the sender's own; this module says which sheets
the mail carries, finds the school each name in them stands for, and
keeps the results of each school found (results.keep_results, as a
school's own results are kept).

A name stands for a school when it is the school's name as names are
compared elsewhere (nomination.school_key: no case, accents,
punctuation or "School", "PS" for "Primary", "St" for "Saint"), or when
the two differ only by words that say what kind of school it is
(`Kirkton` for Kirkton Primary School, `St Serf's Primary` for St Serf's
RC Primary School), never by a word of its own (`Kirkton Primary` is
not Kirkton High School). A school may also be named by its number as
the digest and replies show it (`#12`, or `Kirkton PS (#12)`, when the
name must fit that school too). Nothing is guessed: a name that fits no
school, or more than one (the same name in two clusters), is not
applied, and the reply lists it with the candidates and their numbers.
A school named more than once (in two rows, under the same name or
different ones, or in two sheets) gets nothing, since the sheet cannot
say which is right; the reply says so.

A sheet is read to its first MAX_ROWS rows (spreadsheets.py) and the
reply says when rows after them were not read. Names that fit no school
or several are listed once each, the first NAMES_LISTED of them, then
how many more. A sheet that was meant to hold results (a criterion is
named in a header) but holds no value that can be taken, or that could
not be read at all, makes the mail results mail too, so that staff are
told why nothing was stored. Characters a reader cannot see (bidi
controls, zero-width spaces) are shown escaped in the reply, and left
out when a name is matched.

Only a sheet attached to the staff member's own message is taken; one
inside a message forwarded as an attachment is someone else's, and is
listed as not taken (as commands are never read from one). Results in
the text of staff mail are not read: a sheet says which school each
row is for, a line of text may not.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from typing import TYPE_CHECKING

from tinydb.table import Document

from mailbot import results, selfreview, spreadsheets
from mailbot.errors import SetAside
from mailbot.mail import Attachment, Incoming, shown_name
from mailbot.nomination import school_key
from mailbot.selfreview import Criterion, Reading, Results
from mailbot.spreadsheets import MAX_COLUMNS, MAX_ROWS, Grid

if TYPE_CHECKING:
    from mailbot.workflow import Workflow

# The deepest nesting of MIME parts looked at (as commands.py).
MIME_DEPTH = 12
# Words that say what kind of school a school is, not which: a name may
# have them or not and still be the same school's.
KIND_WORDS = frozenset({"primary", "secondary", "high", "rc", "nursery",
                        "class", "community", "infant", "junior"})
# How many candidates an ambiguous name lists, and how much of a name
# written in a sheet a reply repeats.
CANDIDATES = 6
NAME_CHARS = 80
# How many names that fit no school (or several) a reply lists one by
# one; the rest are counted.
NAMES_LISTED = 50
# What the one refusal event of a sheet (commands.py) lists of what was
# not kept from it: the first entries, and at most so many characters.
EVENT_LISTED = 10
EVENT_CHARS = 4_000
# Where a sheet's header may stand (as selfreview.HEADER_SEARCH).
HEADER_SEARCH = selfreview.HEADER_SEARCH

# A school's number after its name (`Kirkton PS (#12)`, `#12`) or before
# it, as replies show it (`#12 Kirkton Primary School`, `(#12) Kirkton`).
_NUMBER = re.compile(r"[(\[]?\s*#\s*(\d{1,9})\s*[)\]]?\s*$")
_NUMBER_FIRST = re.compile(r"\s*[(\[]?\s*#\s*(\d{1,9})\s*[)\]]?(?=[\s,;:\-\u2013]|$)")
_WHERE = re.compile(r"sheet \d+, ")


@dataclass(frozen=True)
class Sheet:
    """One spreadsheet attached to a staff member's mail."""

    filename: str
    forwarded: bool              # inside a message forwarded as attachment
    reading: Reading | None      # None when it could not be read
    problem: str = ""            # why it could not be read
    cut: tuple[int, ...] = ()    # its grids read only to MAX_ROWS rows
    twice: frozenset[str] = frozenset()  # names given in more than one row
    meant: bool = False          # a criterion is named in a header

    @property
    def shown(self) -> str:
        return shown_name(self.filename)

    @property
    def has_results(self) -> bool:
        return self.reading is not None and any(
            r.scores for r in self.reading.schools.values())

    @property
    def taken(self) -> bool:
        """Whether the sheet makes staff mail results mail: it holds
        results, was meant to (a criterion in a header), or could not be
        read at all (it may have been meant to)."""
        return self.has_results or self.meant or self.reading is None


@dataclass(frozen=True)
class Taken:
    """What became of one school's results, or of a sheet as a whole:
    `what` names it (for the reply), `said` says what was stored or why
    nothing was."""

    what: str
    said: str
    stored: bool
    cluster_id: int | None = None
    school_id: int | None = None
    sheet: str = ""              # the sheet it is about, as shown
    count: int = 1               # how many rows or names it stands for


@dataclass
class _Named:
    sheet: Sheet
    name: str
    results: Results
    problems: list[str] = field(default_factory=list)


# -- the sheets a message carries ---------------------------------------------

def sheets_of(mail: Incoming) -> list[Sheet]:
    """Every CSV or workbook a message carries, as read (or why it could
    not be), in order; none at all when not one of them holds results,
    was meant to or could not be read (the mail is then no results
    mail, and a sheet of another kind, a nomination's say, is left to
    the rest of mailbot)."""
    return mail.once("staffsheets.sheets", lambda: _sheets(mail))


def carries_results(mail: Incoming) -> bool:
    """Whether the message carries a sheet with self-review results, or
    one meant to hold them, or one that could not be read (commands.py:
    staff mail so is taken even with no command in it, and answered)."""
    return bool(sheets_of(mail))


def _sheets(mail: Incoming) -> list[Sheet]:
    own, inside = _placed(mail.message)
    found: list[Sheet] = []
    for attachment in mail.attachments:
        if not _spreadsheet(attachment):
            continue
        name = attachment.filename
        forwarded = not name or name not in own or name in inside
        if attachment.unread:
            found.append(Sheet(name, forwarded, None, attachment.unread))
            continue
        try:
            grids = spreadsheets.grids(attachment)
            reading = selfreview.from_attachment(attachment)
        except SetAside as exc:
            found.append(Sheet(name, forwarded, None, exc.reason))
            continue
        results = any(r.scores for r in reading.schools.values())
        unread = "" if results else _unreadable(grids)
        if unread:
            found.append(Sheet(name, forwarded, None, unread))
            continue
        cut = tuple(n for n, grid in enumerate(grids, 1)
                    if len(grid) >= MAX_ROWS)
        found.append(Sheet(name, forwarded, reading, cut=cut,
                           twice=_named_twice(grids, set(reading.schools)),
                           meant=results or _meant(grids)))
    return found if any(s.taken for s in found) else []


def _unreadable(grids: list[Grid]) -> str:
    """Why a sheet giving no results could not be read at all, or ""."""
    cells = [cell for grid in grids for row in grid for cell in row]
    if not any(cell.strip() for cell in cells):
        return ("it is empty, or damaged, or not the CSV or XLSX file its "
                "name says")
    if any("\x00" in cell for cell in cells):
        return ("its text is in an encoding that is not read (save it as "
                "\"CSV UTF-8\" or as an Excel workbook)")
    return ""


def _meant(grids: list[Grid]) -> bool:
    """Whether a criterion is named where a sheet's header may be."""
    return any(selfreview.criterion(cell) is not None
               for grid in grids for row in grid[:HEADER_SEARCH]
               for cell in row[:MAX_COLUMNS] if cell and len(cell) <= 200)


def _named_twice(grids: list[Grid], names: set[str]) -> frozenset[str]:
    """The names a sheet gives in more than one row: in the column where
    the names are, in two rows of values with no criterion (one row a
    school), or with the same criterion (one row a school and
    criterion). The reader keeps the first of such rows; the school
    gets nothing instead, as when it is named in two ways."""
    names.discard(selfreview.OWN)
    seen: set[tuple[str, Criterion | None]] = set()
    twice: set[str] = set()
    for grid in grids:
        rows = [[selfreview.tidy(str(cell)) for cell in row[:MAX_COLUMNS]]
                for row in grid[:MAX_ROWS]]
        tally = Counter(col for row in rows for col, cell in enumerate(row)
                        if cell in names)
        if not tally:
            continue
        col = tally.most_common(1)[0][0]
        for row in rows:
            name = row[col] if col < len(row) else ""
            if name not in names:
                continue
            others = [cell for n, cell in enumerate(row) if n != col and cell]
            if not any(ch.isdigit() for cell in others for ch in cell):
                continue
            which = next((c for cell in others
                          if (c := selfreview.criterion(cell)) is not None),
                         None)
            if (name, which) in seen:
                twice.add(name)
            seen.add((name, which))
    return frozenset(twice)


def _spreadsheet(attachment: Attachment) -> bool:
    """A CSV or workbook, as the reader knows them (spreadsheets.kind)."""
    return spreadsheets.kind(attachment) is not None


def _placed(message: Message) -> tuple[set[str], set[str]]:
    """The file names of the parts attached to the message itself, and of
    those inside a message it carries (forwarded as an attachment)."""
    own: set[str] = set()
    inside: set[str] = set()

    def walk(part: Message, depth: int, forwarded: bool) -> None:
        if depth > MIME_DEPTH:
            return
        if part.get_content_maintype() == "message":
            forwarded = True
        if part.is_multipart() or part.get_content_maintype() == "message":
            for sub in part.get_payload() or []:
                if isinstance(sub, Message):
                    walk(sub, depth + 1, forwarded)
            return
        try:
            name = part.get_filename()
        except (ValueError, LookupError, TypeError):
            return
        if name:
            # As it was written, and with encoded-words decoded, as
            # mail-parser gives it (Outlook writes names so).
            (inside if forwarded else own).update({str(name),
                                                   _decoded(str(name))})

    walk(message, 0, False)
    return own, inside


def _decoded(name: str) -> str:
    try:
        return str(make_header(decode_header(name)))
    except (ValueError, LookupError, UnicodeError, HeaderParseError):
        return name


# -- names ---------------------------------------------------------------------

def find_school(written: str, schools: Sequence[Document]
                ) -> tuple[Document | None, list[Document], str]:
    """The school a name written in a sheet stands for; else None, with
    the schools it could be (more than one) or why it is none."""
    return SchoolNames(schools).find(written)


class SchoolNames:
    """The schools of the record, their names compared once: indexed by
    their words, and by the words that are not kinds of school, so that
    finding a name looks at the few schools that could fit it."""

    def __init__(self, schools: Sequence[Document]) -> None:
        self.numbers: dict[int, Document] = {}
        self.exact: dict[tuple[str, ...], list[Document]] = {}
        self.cores: dict[frozenset[str], list[tuple[Document, list[str]]]] = {}
        for school in schools:
            words = _words(str(school["name"]))
            self.numbers[school.doc_id] = school
            self.exact.setdefault(tuple(words), []).append(school)
            self.cores.setdefault(_core(words), []).append((school, words))

    def find(self, written: str
             ) -> tuple[Document | None, list[Document], str]:
        number = _NUMBER.search(written)
        if number:
            rest = written[:number.start()]
        else:
            number = _NUMBER_FIRST.match(written)
            rest = written[number.end():] if number else ""
        if number:
            wanted = int(number.group(1))
            school = self.numbers.get(wanted)
            if school is None:
                return None, [], f"there is no school #{wanted}"
            rest = rest.strip(" -,;:\u2013")
            if rest and not _fits(_words(rest), _words(str(school["name"]))):
                return None, [], f"#{wanted} is {school['name']}, not {rest}"
            return school, [], ""
        words = _words(written)
        if not words:
            return None, [], "it is no school's name"
        found = self.exact.get(tuple(words)) or [
            school for school, name in self.cores.get(_core(words), [])
            if _fits(words, name)]
        if len(found) == 1:
            return found[0], [], ""
        if not found:
            return None, [], "no school is called that"
        return None, list(found), ""


def _words(name: str) -> list[str]:
    return school_key(_visible(name)).split()


def _core(words: list[str]) -> frozenset[str]:
    """A name's words that are not kinds of school: two names that fit
    have the same (`_fits`)."""
    return frozenset(words) - KIND_WORDS


def _visible(text: str) -> str:
    """Text without the characters a reader cannot see (format
    characters: bidi controls, zero-width spaces, soft hyphens)."""
    return "".join(c for c in text if unicodedata.category(c) != "Cf")


def _escaped(text: str) -> str:
    """Text for a reply: each character a reader cannot see (a format or
    control character, bar a space) shown as its code, <U+202E>."""
    return "".join(
        f"<U+{ord(c):04X}>" if unicodedata.category(c) in ("Cf", "Cc")
        and c not in "\n\t" else c for c in text)


def _fits(written: list[str], name: list[str]) -> bool:
    """Whether two names differ only by words saying what kind of school
    it is, all on one side: `kirkton` and `kirkton primary`, never
    `kirkton primary` and `kirkton high`."""
    a, b = set(written), set(name)
    if not a - KIND_WORDS:
        return False  # "Primary" alone names no school
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    return small <= big and big - small <= KIND_WORDS


# -- taking the results ------------------------------------------------------

def take(flow: Workflow, mail: Incoming, sender: str,
         among: Sequence[Document] | None = None) -> list[Taken]:
    """Keep the results of each school the sheets name, on the school and
    in its history; what became of each, and of each sheet not read, in
    order. Called only for authenticated mail from staff, for whom any
    school of the record may be named; `among` narrows the schools a
    name may stand for (a lead contact's own clusters, say). What is
    said shows the characters a reader cannot see escaped."""
    taken = _take(flow, mail, sender, among)
    return [Taken(_escaped(t.what), _escaped(t.said), t.stored, t.cluster_id,
                  t.school_id, t.sheet, t.count) for t in taken]


def _take(flow: Workflow, mail: Incoming, sender: str,
          among: Sequence[Document] | None) -> list[Taken]:
    store = flow.store
    schools = SchoolNames(store.all_schools() if among is None else among)
    clusters = {c.doc_id: str(c.get("name") or f"cluster #{c.doc_id}")
                for c in store.all_clusters()}
    taken: list[Taken] = []
    named: list[_Named] = []
    for sheet in sheets_of(mail):
        whole = f"the sheet {sheet.shown}"
        if sheet.reading is None:
            taken.append(Taken(whole, f"not read: {sheet.problem}; nothing "
                               "stored from it", False, sheet=sheet.shown))
            continue
        if sheet.forwarded:
            taken.append(Taken(
                whole,
                "it is inside a forwarded message (or has no file name), "
                "so it is not taken: attach the file itself to your own "
                "message", False, sheet=sheet.shown))
            continue
        if sheet.cut:
            which = "" if sheet.cut == (1,) else " of " + ", ".join(
                f"sheet {n}" for n in sheet.cut)
            taken.append(Taken(
                whole, f"only its first {MAX_ROWS:,} rows were read{which}: "
                f"any row after row {MAX_ROWS:,} was not read, and nothing "
                "in it stored; send those rows in another sheet", False,
                sheet=sheet.shown))
        if not sheet.has_results:
            found = "no self-review results were found in it"
            if sheet.reading.problems:
                found += (": nothing could be stored, as the sheet says: "
                          + "; ".join(sheet.reading.problems))
            taken.append(Taken(whole, found, False, sheet=sheet.shown))
            continue
        taken += _sheet_entries(sheet, named)

    by_school: dict[int, list[_Named]] = {}
    found_schools: dict[int, Document] = {}
    unknown: dict[tuple[str, str], Taken] = {}
    for entry in named:
        school, candidates, why = schools.find(entry.name)
        if school is None:
            if candidates:
                why = _ambiguous(candidates, clusters)
            key = (school_key(_visible(entry.name)) or entry.name, why)
            if key not in unknown:
                unknown[key] = Taken(_what(entry), f"{why}; nothing stored",
                                     False, sheet=entry.sheet.shown)
            continue
        by_school.setdefault(school.doc_id, []).append(entry)
        found_schools[school.doc_id] = school
    taken += _listed(list(unknown.values()))

    for school_id, entries in by_school.items():
        school = found_schools[school_id]
        if len(entries) > 1 or entries[0].name in entries[0].sheet.twice:
            ways = " and ".join(
                f"as {_shown_name(e.name)} in {e.sheet.shown}"
                + (", in more than one row" if e.name in e.sheet.twice else "")
                for e in entries)
            for entry in entries:
                taken.append(Taken(
                    _what(entry),
                    f"#{school.doc_id} {school['name']} is named more than "
                    f"once ({ways}); nothing stored for it: send its results "
                    "once", False, school["cluster_id"], school.doc_id,
                    entry.sheet.shown))
            continue
        entry = entries[0]
        review = results.keep_results(
            flow, school, entry.results, entry.problems, mail.message_id,
            by=f"sent by {sender} in the sheet {entry.sheet.shown}")
        cluster = clusters.get(school["cluster_id"], "an unknown cluster")
        taken.append(Taken(_what(entry), _stored(school, cluster, entry, review),
                           True, school["cluster_id"], school.doc_id,
                           entry.sheet.shown))
    return taken


def not_kept(entries: list[Taken]) -> tuple[str, int | None, int | None]:
    """What one refusal in the history says of what a sheet gave that
    was not kept (commands.py records one a sheet): how much, and the
    first of it; with the school's cluster and number when it is about
    one school only."""
    count = sum(e.count for e in entries)
    listed = "; ".join(f'"{e.what}": {e.said}' for e in entries[:EVENT_LISTED])
    if len(entries) > EVENT_LISTED:
        listed += f"; and {len(entries) - EVENT_LISTED:,} more"
    if len(listed) > EVENT_CHARS:
        listed = listed[:EVENT_CHARS - 1] + "\u2026"
    ids = {(e.cluster_id, e.school_id) for e in entries}
    cluster_id, school_id = ids.pop() if len(ids) == 1 else (None, None)
    return f"{count:,} not stored: {listed}", cluster_id, school_id


def _listed(unknown: list[Taken]) -> list[Taken]:
    """The names that fit no school or several: the first NAMES_LISTED,
    then one line for the rest, sheet by sheet."""
    listed = unknown[:NAMES_LISTED]
    rest: dict[str, int] = {}
    for entry in unknown[NAMES_LISTED:]:
        rest[entry.sheet] = rest.get(entry.sheet, 0) + 1
    for sheet, count in rest.items():
        listed.append(Taken(
            f"{count:,} more names in {sheet}",
            f"they fit no school, or several, and are not listed one by one "
            f"(only the first {NAMES_LISTED} such names are); nothing stored "
            "for them", False, sheet=sheet, count=count))
    return listed


def _sheet_entries(sheet: Sheet, named: list[_Named]) -> list[Taken]:
    """The schools a sheet names (added to `named`, each with the problems
    found about it), and what it says of none: results naming no school,
    and the problems that are about no school named."""
    assert sheet.reading is not None
    taken: list[Taken] = []
    mine: list[_Named] = []
    for name, found in sheet.reading.schools.items():
        if not found.scores:
            continue
        if name == selfreview.OWN or not name.strip():
            taken.append(Taken(
                f"results in {sheet.shown} that name no school",
                "nothing stored: a sheet from staff needs a column naming "
                "the school of each row (or a line \"School: name\" above "
                "the table)", False, sheet=sheet.shown))
            continue
        mine.append(_Named(sheet, name, found))
    # A problem is a school's when it starts with the school's name, as
    # selfreview.py writes them; the longest name first (Kirkton High
    # before Kirkton).
    longest = sorted(mine, key=lambda n: len(n.name), reverse=True)
    for problem in sheet.reading.problems:
        text = _WHERE.sub("", problem, count=1) if _WHERE.match(problem) \
            else problem
        owner = next((n for n in longest
                      if text.startswith((f"{n.name},", f"{n.name}:"))), None)
        if owner is not None:
            owner.problems.append(problem)
        else:
            taken.append(Taken(f"the sheet {sheet.shown}", problem, False,
                               sheet=sheet.shown))
    named += mine
    return taken


def _what(entry: _Named) -> str:
    return f"results for {_shown_name(entry.name)} in {entry.sheet.shown}"


def _shown_name(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1] + "\u2026"


def _ambiguous(candidates: list[Document], clusters: dict[int, str]) -> str:
    listed = "; ".join(f"#{s.doc_id} {s['name']} in "
                       f"{clusters.get(s['cluster_id'], 'an unknown cluster')}"
                       for s in candidates[:CANDIDATES])
    if len(candidates) > CANDIDATES:
        listed += f" and {len(candidates) - CANDIDATES} more"
    return (f"it could be any of {len(candidates)}: {listed}; write the "
            f"school's number in the sheet instead (such as "
            f"#{candidates[0].doc_id})")


def _stored(school: Document, cluster: str, entry: _Named,
            review: dict[str, object]) -> str:
    parts = []
    for which, score in entry.results.scores.items():
        part = f"{which.full} {_percent(score.percent)}%"
        if score.counts is not None:
            counts = score.counts
            part += (f" ({'estimated from ' if score.estimated else ''}"
                     f"{counts.addressed} addressed, {counts.partially} "
                     f"partially, {counts.not_addressed} not addressed)")
        elif score.estimated:
            part += " (estimated)"
        parts.append(part)
    short = results.short_of(review)
    said = (f"stored for #{school.doc_id} {school['name']} in {cluster}: "
            + ", ".join(parts) + "; "
            + (f"below {selfreview.THRESHOLD}% or not given: "
               + ", ".join(c.full for c in short) if short else
               f"{selfreview.THRESHOLD}% or more in every criterion"))
    if entry.problems:
        said += "; the sheet also says: " + "; ".join(entry.problems)
    return said


def _percent(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")
