"""Tables of schools in attachments, HTML and pasted text, read by meaning.

People send the same list as a CSV saved by Excel, a workbook with a title
above the header, a table pasted from Word or a grid of tabs. Columns are
recognised by what their header says, never by where they stand.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import openpyxl
from bs4 import BeautifulSoup, Tag

from mailbot.mail import Attachment

log = logging.getLogger(__name__)

# Bounds that keep a hostile or broken file from hanging the poll.
MAX_BYTES = 5_000_000
MAX_UNZIPPED = 50_000_000
MAX_ROWS = 2_000
MAX_COLUMNS = 40
MAX_SHEETS = 10
MAX_TABLES = 50
HEADER_SEARCH = 50

Grid = list[list[str]]


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


def _label(text: str) -> str:
    text = text.lower().replace("\u00a0", " ")
    text = re.sub(r"[*?:#.()\[\]]", " ", text)
    return " ".join(text.split())


_FIELDS: tuple[tuple[str, str], ...] = (
    ("lead_email", r"(?:cluster |main )?(?:lead |contact )?(?:contact )?"
                   r"e ?-?mail(?: address)?"),
    ("cluster", r"(?:the )?(?:cluster|asg|learning community)(?: name)?"
                r"|name of (?:the |your )?(?:cluster|asg)|cluster/asg(?: name)?"
                r"|associated schools? group(?: name)?"),
    ("authority", r"(?:the )?(?:local )?(?:authority|council)(?: name)?|la"
                  r"|local authority/council"),
    ("lead", r"(?:cluster |main )?lead(?: contact)?(?: name| details)?"
             r"|(?:main |cluster )?contact(?: person| name| details)?"
             r"|name of (?:the )?lead(?: contact)?"),
)


def field_label(text: str) -> str | None:
    """Which nomination field a label such as "Local Authority:" names."""
    label = _label(text)
    for name, pattern in _FIELDS:
        if re.fullmatch(pattern, label):
            return name
    return None


def column_meaning(text: str) -> str | None:
    """What a header cell means: school, phase, contact, email, awarded...

    "name" is returned for a bare "Name", which means the contact when a
    school column stands elsewhere and the school otherwise.
    """
    label = _label(text)
    if re.search(r"\be ?-?mail\b", label):
        return "email"
    if re.search(r"\bawarded\b|\bstatus\b|digital school|^dsa$|^award", label):
        return "awarded"
    if re.fullmatch(r"(?:school |establishment )?(?:phase|sector|type|stage"
                    r"|level)|primary ?/ ?secondary|primary or secondary"
                    r"|p ?/ ?s", label):
        return "phase"
    if re.fullmatch(r"(?:the )?(?:schools?|establishments?)(?: name)?"
                    r"|name of (?:the )?(?:school|establishment)"
                    r"|school ?/ ?establishment", label):
        return "school"
    if re.fullmatch(r"(?:school |main |key |dsa |digital )?(?:contact|lead"
                    r"|champion)(?: name| person| details)?|head ?teacher"
                    r"(?: name)?|head|name of (?:the )?contact|teacher"
                    r"|contact person", label):
        return "contact"
    if label == "name":
        return "name"
    if re.fullmatch(r"notes?|comments?|(?:additional |other )?info"
                    r"(?:rmation)?", label):
        return "notes"
    return None


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
    if not schools and not fields:
        return None
    return Table(tuple(schools), fields)


def _tidy(value: str) -> str:
    return " ".join(value.replace("\u00a0", " ").split())


# --- attachments ---------------------------------------------------------

_XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_CSV_TYPES = ("text/csv", "application/csv", "text/comma-separated-values",
              "text/tab-separated-values")


def kind(attachment: Attachment) -> str | None:
    """"csv", "xlsx" or None, from the attachment's name and type."""
    name = attachment.filename.lower()
    if name.endswith((".xlsx", ".xlsm")) or attachment.content_type == _XLSX_TYPE:
        return "xlsx"
    if name.endswith((".csv", ".tsv")) or attachment.content_type in _CSV_TYPES:
        return "csv"
    return None


def from_attachment(attachment: Attachment) -> list[Table]:
    """The tables in a CSV or XLSX attachment; [] for anything else."""
    if len(attachment.data) > MAX_BYTES:
        log.warning("attachment %r skipped: %d bytes is too large to read",
                    attachment.filename, len(attachment.data))
        return []
    which = kind(attachment)
    if which == "csv":
        grids = [_csv_grid(_decode(attachment.data))]
    elif which == "xlsx":
        grids = _xlsx_grids(attachment.filename, attachment.data)
    else:
        return []

    tables = []
    for grid in grids:
        table = interpret(grid)
        if table:
            tables.append(table)
            if table.schools:
                break  # the first sheet with schools is the list
    return tables


def _decode(data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", errors="replace")

    # Excel's "Unicode text" is UTF-16; without a BOM, ASCII text in it is
    # every other byte zero, which tells the byte order too.
    head = data[:400]
    if head and head.count(0) > len(head) // 4:
        little = head[1::2].count(0) > head[0::2].count(0)
        return data.decode("utf-16-le" if little else "utf-16-be",
                           errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _csv_grid(text: str) -> Grid:
    # Excel writes "sep=;" as a first line to name the delimiter.
    quirk = re.match(r"\s*\"?sep=(.)\"?[ \t]*\r?\n", text, re.IGNORECASE)
    if quirk:
        delimiter, text = quirk.group(1), text[quirk.end():]
    else:
        delimiter = _sniff(text)

    grid: Grid = []
    try:
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if len(grid) >= MAX_ROWS:
                break
            grid.append(row[:MAX_COLUMNS])
    except csv.Error as exc:
        log.warning("CSV attachment read only in part: %s", exc)
    return grid


def _sniff(text: str) -> str:
    sample = text[:8192]
    lines = [line for line in sample.splitlines() if line.strip()][:20]
    try:
        found = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        if lines and found in lines[0]:
            return found
    except csv.Error:
        pass

    def steadiness(candidate: str) -> tuple[int, int]:
        counts = [line.count(candidate) for line in lines] or [0]
        return min(counts), sum(counts)

    return max(",;\t|", key=steadiness)


def _xlsx_grids(name: str, data: bytes) -> list[Grid]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        if unzipped > MAX_UNZIPPED:
            log.warning("workbook %r skipped: %d bytes unzipped", name, unzipped)
            return []
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True,
                                      data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on damaged files
        log.warning("workbook %r could not be opened: %s", name, exc)
        return []

    grids: list[Grid] = []
    try:
        for sheet in book.worksheets[:MAX_SHEETS]:
            rows = sheet.iter_rows(max_row=MAX_ROWS, max_col=MAX_COLUMNS,
                                   values_only=True)
            grids.append([[_cell(value) for value in row] for row in rows])
    except Exception as exc:  # as above, for damage found while reading
        log.warning("workbook %r read only in part: %s", name, exc)
    finally:
        book.close()
    return grids


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()[:10]
    return str(value)


# --- HTML and pasted text ------------------------------------------------

def from_html(html: str) -> list[Table]:
    """The tables of an HTML body, each <table> read on its own."""
    soup = BeautifulSoup(html, "html.parser")
    tables = []
    for element in soup.find_all("table")[:MAX_TABLES]:
        grid: Grid = []
        for row in element.find_all("tr")[:MAX_ROWS]:
            if not isinstance(row, Tag) or row.find_parent("table") is not element:
                continue  # a row of a table nested inside this one
            cells = row.find_all(["td", "th"], recursive=False)
            grid.append([cell.get_text(" ", strip=True) for cell in cells])
        table = interpret(grid)
        if table:
            tables.append(table)
    return tables


_MARKDOWN_RULE = re.compile(r"\s*\|?\s*:?-{3,}[-:|\s]*")


def _separator(line: str) -> str | None:
    if "\t" in line.strip():
        return "tab"
    if " | " in line or line.strip().startswith("|"):
        return "pipe"
    if re.search(r"\S {2,}\S", line.strip()):
        return "spaces"
    return None


def _cells(line: str, separator: str) -> list[str]:
    line = line.strip()
    if separator == "tab":
        return [cell.strip() for cell in line.split("\t")]
    if separator == "pipe":
        return [cell.strip() for cell in line.strip("|").split("|")]
    return re.split(r" {2,}", line)


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
