"""Reading CSV and XLSX attachments into plain grids of text cells.

Excel saves CSV in several encodings and with its own quirks; workbooks
may be large or damaged. Everything here is bounded and never raises on
bad input: a file that cannot be read gives no rows and a warning.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import zipfile
import zlib
from datetime import date, datetime

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException

from mailbot.mail import Attachment

log = logging.getLogger(__name__)

# Bounds that keep a hostile or broken file from hanging the poll.
MAX_BYTES = 5_000_000
MAX_UNZIPPED = 50_000_000
MAX_ROWS = 2_000
MAX_COLUMNS = 40
MAX_SHEETS = 10

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
    """The grid of a CSV, or of each sheet of a workbook; [] otherwise."""
    if len(attachment.data) > MAX_BYTES:
        log.warning("attachment %r skipped: %d bytes is too large to read",
                    attachment.filename, len(attachment.data))
        return []
    which = kind(attachment)
    if which == "csv":
        return [_csv_grid(_decode(attachment.data))]
    if which == "xlsx":
        return _xlsx_grids(attachment.filename, attachment.data)
    return []


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
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for row in rows:
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


# What openpyxl raises on a damaged workbook: broken zips, missing parts,
# bad XML (ParseError is a SyntaxError) and values of the wrong kind.
_DAMAGED = (zipfile.BadZipFile, zlib.error, InvalidFileException, KeyError,
            ValueError, NotImplementedError, RuntimeError,
            TypeError, IndexError, AttributeError, OSError, EOFError,
            SyntaxError)


def _xlsx_grids(name: str, data: bytes) -> list[Grid]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(info.file_size for info in archive.infolist())
        if unzipped > MAX_UNZIPPED:
            log.warning("workbook %r skipped: %d bytes unzipped",
                        name, unzipped)
            return []
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True,
                                      data_only=True)
    except _DAMAGED as exc:
        log.warning("workbook %r could not be opened: %s", name, exc)
        return []

    grids: list[Grid] = []
    try:
        for sheet in book.worksheets[:MAX_SHEETS]:
            rows = sheet.iter_rows(max_row=MAX_ROWS, max_col=MAX_COLUMNS,
                                   values_only=True)
            grids.append([[_cell(value) for value in row] for row in rows])
    except _DAMAGED as exc:
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
