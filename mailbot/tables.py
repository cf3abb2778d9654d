"""Tables of schools in attachments, HTML and pasted text, read by meaning.

People send the same list as a CSV saved by Excel, a workbook with a title
above the header, a table pasted from Word or a grid of tabs. Columns are
recognised by what their header says, never by where they stand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Tag

from mailbot import spreadsheets
from mailbot.mail import Attachment
from mailbot.spreadsheets import MAX_COLUMNS, MAX_ROWS, Grid

# How far down a sheet to look for its header, and how many tables of an
# HTML body to read: bounds against hostile input, far above real use.
HEADER_SEARCH = 50
MAX_TABLES = 50


@dataclass(frozen=True)
class SchoolRow:
    """One school's cells, as written; empty strings for missing cells."""

    school: str
    phase: str = ""
    contact: str = ""
    email: str = ""
    awarded: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Table:
    """What one table says: school rows and labelled fields.

    `fields` maps "cluster", "authority", "lead" and "lead_email" to the
    text given for them, from a two-column table or "Label: value" rows.
    """

    schools: tuple[SchoolRow, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)


_LABEL_PUNCTUATION = re.compile(r"[*?:#.()\[\]]")


def _label(text: str) -> str:
    text = text.lower().replace("\u00a0", " ")
    text = _LABEL_PUNCTUATION.sub(" ", text)
    return " ".join(text.split())


_FIELD_PATTERNS: tuple[tuple[str, str], ...] = (
    ("lead_email", (r"(?:cluster |main )?(?:lead |contact )?(?:contact )?"
                    r"e ?-?mail(?: address)?")),
    ("cluster", (r"(?:the )?(?:cluster|asg|learning community)(?: name)?"
                 r"|name of (?:the |your )?(?:cluster|asg)"
                 r"|cluster/asg(?: name)?"
                 r"|associated schools? group(?: name)?")),
    ("authority", (r"(?:the )?(?:local )?(?:authority|council)(?: name)?|la"
                   r"|local authority/council")),
    ("lead", (r"(?:cluster |main )?lead(?: contact)?(?: name| details)?"
              r"|(?:main |cluster )?contact(?: person| name| details)?"
              r"|name of (?:the )?lead(?: contact)?")),
)
_FIELDS = tuple((name, re.compile(pattern)) for name, pattern in _FIELD_PATTERNS)


def field_label(text: str) -> str | None:
    """Which nomination field a label such as "Local Authority:" names."""
    label = _label(text)
    for name, pattern in _FIELDS:
        if pattern.fullmatch(label):
            return name
    return None


def column_meaning(text: str) -> str | None:
    """What a header cell means: school, phase, contact, email, awarded...

    "name" is returned for a bare "Name", which means the contact when a
    school column stands elsewhere and the school otherwise.
    """
    label = _label(text)
    if _EMAIL_COLUMN.search(label):
        return "email"
    if _AWARDED_COLUMN.search(label):
        return "awarded"
    if _PHASE_COLUMN.fullmatch(label):
        return "phase"
    if _SCHOOL_COLUMN.fullmatch(label):
        return "school"
    if _CONTACT_COLUMN.fullmatch(label) or all(
            _CONTACT_COLUMN.fullmatch(part)
            for part in _ALTERNATIVES.split(label)):
        return "contact"
    if label == "name":
        return "name"
    if _NOTES_COLUMN.fullmatch(label):
        return "notes"
    return None


_EMAIL_COLUMN = re.compile(r"\be ?-?mail\b")
_AWARDED_COLUMN = re.compile(r"\bawarded\b|\bstatus\b|digital school|^dsa$|^award")
_PHASE_COLUMN = re.compile(
    r"(?:school |establishment )?(?:phase|sector|type|stage|level)"
    r"|primary ?/ ?secondary|primary or secondary|p ?/ ?s")
_SCHOOL_COLUMN = re.compile(
    r"(?:the )?(?:schools?|establishments?)(?: name)?"
    r"|name of (?:the )?(?:school|establishment)|school ?/ ?establishment")
_CONTACT_COLUMN = re.compile(
    r"(?:school |main |key |dsa |digital )?(?:contact|lead|champion)"
    r"(?: name| person| details)?|head ?teacher(?: name)?|head"
    r"|name of (?:the )?contact|teacher|contact person")
# "Head teacher / contact", "Contact or lead": each part a contact's label.
_ALTERNATIVES = re.compile(r" ?/ ?| or | and ")
_NOTES_COLUMN = re.compile(r"notes?|comments?|(?:additional |other )?info(?:rmation)?")


def _header(row: Sequence[str]) -> dict[str, int] | None:
    columns: dict[str, int] = {}
    for index, cell in enumerate(row):
        meaning = column_meaning(cell) if cell else None
        if meaning and meaning not in columns:
            columns[meaning] = index
    if "name" in columns:
        index = columns.pop("name")
        if "school" not in columns:
            columns["school"] = index
        elif "contact" not in columns:
            columns["contact"] = index
    if "school" not in columns or len(columns) < 2:
        return None
    return columns


# A data row that is a section heading or a note rather than a school.
_NOT_A_SCHOOL = re.compile(
    r"(?:primary|secondary|special|all)?\s*(?:schools?|establishments?)?:?"
    r"|(?:notes?|please|total|key|n\.?b\.?)\b.*|\*.*|.{100,}",
    re.IGNORECASE | re.DOTALL,
)


# A word that says a name is a school's.
SCHOOL_WORD = re.compile(
    r"\b(?:school|primary|academy|high|secondary|grammar|sgoil|college"
    r"|campus|ps|hs|rc|nursery)\b", re.IGNORECASE)


def _people_perhaps(header: Sequence[str], columns: dict[str, int]) -> bool:
    """Whether a list may be of people rather than schools: its names are
    under a bare "Name", with neither a phase nor a contact beside them
    (a signature's "Name | Email")."""
    return column_meaning(header[columns["school"]]) == "name" \
        and not {"phase", "contact"} & columns.keys()


def _school_rows(rows: Iterable[Sequence[str]],
                 columns: dict[str, int]) -> list[SchoolRow]:
    found = []
    for row in rows:
        cells = {meaning: row[index] if index < len(row) else ""
                 for meaning, index in columns.items()}
        school = cells.pop("school")
        if not school or _NOT_A_SCHOOL.fullmatch(school) or _header(row):
            continue
        found.append(SchoolRow(school, **cells))
    return found


def _pair(row: Sequence[str]) -> tuple[str, str] | None:
    cells = [cell for cell in row if cell]
    if len(cells) == 1 and ":" in cells[0]:
        cells = [part.strip() for part in cells[0].split(":", 1)]
    if len(cells) < 2:
        return None
    name = field_label(cells[0])
    return (name, cells[1]) if name and cells[1] else None


def interpret(grid: Sequence[Sequence[str]]) -> Table | None:
    """The schools and fields in a grid of cells, or None if it has none.

    The header may be anywhere in the first rows; "Label | value" rows
    above it (or a grid of nothing else) supply the labelled fields.
    """
    rows = [[_tidy(cell) for cell in row[:MAX_COLUMNS]]
            for row in grid[:MAX_ROWS]]
    header_at, columns = None, None
    for index, row in enumerate(rows[:HEADER_SEARCH]):
        columns = _header(row)
        if columns:
            header_at = index
            break

    fields: dict[str, str] = {}
    for row in rows[:header_at]:
        pair = _pair(row)
        if pair:
            fields.setdefault(*pair)

    schools: list[SchoolRow] = []
    if header_at is not None and columns:
        schools = _school_rows(rows[header_at + 1:], columns)
        if _people_perhaps(rows[header_at], columns):
            schools = [s for s in schools if SCHOOL_WORD.search(s.school)]
    if not schools and not fields:
        return None
    return Table(tuple(schools), fields)


def _tidy(value: str) -> str:
    return " ".join(value.replace("\u00a0", " ").split())


# --- attachments, HTML and pasted text ---------------------------------

def from_attachment(attachment: Attachment) -> list[Table]:
    """The tables in a CSV or XLSX attachment; [] for anything else.

    Of a workbook's sheets, the first with a list of schools is the list;
    labelled fields before it count too.
    """
    tables = []
    for grid in spreadsheets.grids(attachment):
        table = interpret(grid)
        if table:
            tables.append(table)
            if table.schools:
                break
    return tables


# Where mail clients start the quoted history of a reply in HTML.
_HTML_HISTORY = ("blockquote", "div.gmail_quote", "div#divRplyFwdMsg",
                 "div#appendonsend", "hr#stopSpelling",
                 "div.OutlookMessageHeader", "div.yahoo_quoted",
                 "div#mail-editor-reference-message-container")


def _cell_text(cell: Tag) -> str:
    """A cell's text, with the address of each mailto link in it that the
    text does not show (Outlook writes a contact as a link on the name):
    of its first few links only, as a contact's cell has one or two."""
    text = cell.get_text(" ", strip=True)
    shown = text.lower()
    hidden: list[str] = []
    for link in cell.find_all("a", href=True, limit=CELL_LINKS):
        href = str(link["href"])
        if href[:7].lower() == "mailto:":
            address = href[7:].split("?")[0].strip()
            if address and address.lower() not in shown \
                    and address not in hidden:
                hidden.append(address)
    return " ".join([text, *(f"<{a}>" for a in hidden)]) if hidden else text


# The links of a table cell looked at for addresses.
CELL_LINKS = 4


def from_html(html: str, history: bool = False) -> list[Table]:
    """The tables of an HTML body, each <table> read on its own.

    Tables in the quoted history of a reply are left out unless
    `history` asks for them, as a forward does.
    """
    if "<table" not in html.lower():
        return []  # the parser knows a tag by "<" and its name, in any case
    soup = BeautifulSoup(html, "html.parser")
    if not history:
        for marker in soup.select(", ".join(_HTML_HISTORY)):
            for later in marker.find_next_siblings():
                later.decompose()
            marker.decompose()

    tables = []
    for element in soup.find_all("table")[:MAX_TABLES]:
        grid: Grid = []
        # Only this table's own rows (directly, or in its thead, tbody or
        # tfoot): searching the whole subtree for each of many nested
        # tables would make deeply nested mail quadratic to read.
        sections = [element, *element.find_all(
            ["thead", "tbody", "tfoot"], recursive=False)]
        rows = [row for part in sections
                for row in part.find_all("tr", recursive=False)]
        for row in rows[:MAX_ROWS]:
            if not isinstance(row, Tag):
                continue
            cells = row.find_all(["td", "th"], recursive=False)
            grid.append([_cell_text(cell) for cell in cells])
        table = interpret(grid)
        if table:
            tables.append(table)
    return tables


_MARKDOWN_RULE = re.compile(r"\s*\|?\s*:?-{3,}[-:|\s]*")


def _separator(line: str) -> str | None:
    if "\t" not in line and "|" not in line and "  " not in line:
        return None  # what each test below needs, in the whole line
    stripped = line.strip()
    if "\t" in stripped:
        return "tab"
    if " | " in line or stripped.startswith("|"):
        return "pipe"
    if "  " in stripped and _SPACED.search(stripped):
        return "spaces"
    return None


_SPACED = re.compile(r"\S {2,}\S")
_SPACES = re.compile(r" {2,}")


def _cells(line: str, separator: str) -> list[str]:
    line = line.strip()
    if separator == "tab":
        return [cell.strip() for cell in line.split("\t")]
    if separator == "pipe":
        return [cell.strip() for cell in line.strip("|").split("|")]
    return _SPACES.split(line)


def from_text(text: str) -> tuple[list[Table], str]:
    """Tables pasted into a plain body, and the body without them.

    A table is two or more consecutive lines split by tabs, " | " or runs
    of spaces. Lines that were read as a table are blanked in the text
    returned, so that nothing reads them a second time.
    """
    lines = text.splitlines()
    tables: list[Table] = []
    start = 0
    while start < len(lines):
        separator = _separator(lines[start])
        end = start + 1
        while separator and end < len(lines) and (
                _separator(lines[end]) == separator
                or _MARKDOWN_RULE.fullmatch(lines[end])):
            end += 1
        if separator and end - start >= 2:
            grid = [_cells(line, separator) for line in lines[start:end]
                    if not _MARKDOWN_RULE.fullmatch(line)]
            table = interpret(grid)
            if table:
                tables.append(table)
                lines[start:end] = [""] * (end - start)
        start = end
    return tables, "\n".join(lines)
