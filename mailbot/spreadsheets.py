"""Reading CSV and XLSX attachments into plain grids of text cells.

Excel saves CSV in several encodings and with its own quirks; workbooks
may be large or damaged. Everything here is bounded. A damaged file gives
no rows and a warning; a file refused for its size (too large, a zip that
would expand too far, or one mail.py left unread) raises SetAside with the
reason, so that the message goes to a person rather than being answered
as if it had no list of schools. A workbook is measured from its zip
directory before openpyxl opens it, so a zip bomb costs a few milliseconds.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import zipfile
import zlib
from collections.abc import Iterator
from datetime import date, datetime
from typing import NoReturn

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from mailbot.errors import SetAside
from mailbot.mail import Attachment, shown_name

log = logging.getLogger(__name__)

# Bounds that keep a hostile or broken file from hanging the poll.
MAX_BYTES = 5_000_000
MAX_ROWS = 2_000
MAX_COLUMNS = 40
MAX_SHEETS = 10
# A cell's text past this is cut: no school's name or address is longer.
MAX_CELL_CHARS = 1_000
# A CSV line past this is cut before the csv module splits it.
MAX_LINE_CHARS = 10_000
# A workbook, from its zip directory: what it would expand to, how many
# parts it has and how far it is compressed. A real list of schools is
# well under a megabyte unzipped, in a dozen or two parts, compressed
# five to twenty times; a zip bomb is compressed hundreds of times. The
# ratio is only asked of a workbook large enough unzipped to matter.
# openpyxl reads a sheet's XML to its end to find its size when the sheet
# does not state it, so an XML part is bounded on its own: 10 MB is about
# a second to read, and 20 times a sheet of 2,000 schools.
MAX_UNZIPPED = 50_000_000
MAX_XML_PART = 10_000_000
MAX_MEMBERS = 1_000
MAX_RATIO = 100
RATIO_FROM = 1_000_000

Grid = list[list[str]]

_XLSX_TYPE = ("application/vnd.openxmlformats-officedocument"
              ".spreadsheetml.sheet")
_CSV_TYPES = ("text/csv", "application/csv", "text/comma-separated-values",
              "text/tab-separated-values")


def kind(attachment: Attachment) -> str | None:
    """"csv", "xlsx" or None, from the attachment's name and type."""
    name, content_type = attachment.filename.lower(), attachment.content_type
    if name.endswith((".xlsx", ".xlsm")) or content_type == _XLSX_TYPE:
        return "xlsx"
    if name.endswith((".csv", ".tsv")) or content_type in _CSV_TYPES:
        return "csv"
    return None


def grids(attachment: Attachment) -> list[Grid]:
    """The grid of a CSV, or of each sheet of a workbook; [] otherwise.

    Raises SetAside for a CSV or workbook that is not read for its size.
    """
    which = kind(attachment)
    if which is None:
        return []
    if attachment.unread:
        refuse(attachment, attachment.unread)
    if len(attachment.data) > MAX_BYTES:
        refuse(attachment, f"{len(attachment.data):,} bytes, over the "
                           f"{MAX_BYTES:,} read from a spreadsheet")
    if which == "csv":
        return [_csv_grid(_decode(attachment.data))]
    if which == "xlsx":
        return _xlsx_grids(attachment)
    return []


def refuse(attachment: Attachment, reason: str) -> NoReturn:
    """Raise SetAside for a spreadsheet not read, naming it and why."""
    name = shown_name(attachment.filename)
    log.warning("spreadsheet %s not read: %s", name, reason)
    raise SetAside(f"attachment {name} not read ({reason}); a list of "
                   "schools in it would be missed")


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
        rows = csv.reader(_bounded_lines(text), delimiter=delimiter)
        for row in rows:
            if len(grid) >= MAX_ROWS:
                break
            grid.append([cell[:MAX_CELL_CHARS] for cell in row[:MAX_COLUMNS]])
    except csv.Error as exc:
        log.warning("CSV attachment read only in part: %s", exc)
    return grid


def _bounded_lines(text: str) -> Iterator[str]:
    """The lines of `text`, line ends kept, each cut to MAX_LINE_CHARS (a
    quoted cell that runs on over many lines is cut by the csv module's
    own field limit)."""
    for line in io.StringIO(text, newline=""):
        if len(line) > MAX_LINE_CHARS:
            end = len(line) - len(line.rstrip("\r\n"))
            line = line[:MAX_LINE_CHARS] + line[len(line) - end:]
        yield line


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


# What openpyxl raises on a damaged workbook: broken zips, missing parts,
# bad XML (ParseError is a SyntaxError) and values of the wrong kind.
_DAMAGED = (zipfile.BadZipFile, zlib.error, InvalidFileException, KeyError,
            ValueError, NotImplementedError, RuntimeError,
            TypeError, IndexError, AttributeError, OSError, EOFError,
            SyntaxError)


def _xlsx_grids(attachment: Attachment) -> list[Grid]:
    name, data = shown_name(attachment.filename), attachment.data
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
        # zipfile stops reading a member at the size its directory
        # declares, so these sizes bound what openpyxl can unpack.
        too_much = _too_much(members)
        if too_much:
            refuse(attachment, too_much)
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True,
                                      data_only=True)
    except _DAMAGED as exc:
        log.warning("workbook %s could not be opened: %s", name, exc)
        return []

    grids: list[Grid] = []
    try:
        for sheet in book.worksheets[:MAX_SHEETS]:
            rows = sheet.iter_rows(max_row=MAX_ROWS, max_col=MAX_COLUMNS,
                                   values_only=True)
            grids.append([[_cell(value) for value in row] for row in rows])
    except _DAMAGED as exc:
        log.warning("workbook %s read only in part: %s", name, exc)
    finally:
        book.close()
    return grids


def _too_much(members: list[zipfile.ZipInfo]) -> str:
    """Why a workbook with these zip members is not opened, or ""."""
    if len(members) > MAX_MEMBERS:
        return f"{len(members):,} parts in its zip, over {MAX_MEMBERS:,}"
    unzipped = sum(info.file_size for info in members)
    if unzipped > MAX_UNZIPPED:
        return (f"{unzipped:,} bytes unzipped, over the {MAX_UNZIPPED:,} "
                "read from a workbook")
    for info in members:
        if info.filename.lower().endswith((".xml", ".rels")) \
                and info.file_size > MAX_XML_PART:
            return (f"its part {info.filename[:80]!r} is {info.file_size:,} "
                    f"bytes unzipped, over {MAX_XML_PART:,}")
    zipped = sum(info.compress_size for info in members)
    if unzipped > RATIO_FROM and unzipped > MAX_RATIO * max(zipped, 1):
        return (f"compressed {unzipped // max(zipped, 1):,} times, over the "
                f"{MAX_RATIO} of any real workbook")
    return ""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (datetime, date)):
        return value.isoformat()[:10]
    return str(value)[:MAX_CELL_CHARS]
