"""Self-review results and comments, read by criterion.

The Digital Schools self-review has five criteria. Each of its statements
is answered addressed, partially addressed or not addressed, and a school
may apply for validation once it scores at least 70% in every criterion.
This module reads what schools and staff send about that: results from
a sheet (one row per criterion, or one row per school in a cluster) or
from the text of a mail (comments are read by tagging.py). It changes
nothing and sends nothing.

The programme's own percentage weighs statements that are essential more
heavily, so it cannot be worked out from counts alone. A percentage that
is given is taken as it stands; one worked out from counts is marked as
an estimate (see `percent_from_counts`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mailbot import spreadsheets
from mailbot.mail import Attachment
from mailbot.spreadsheets import MAX_COLUMNS, MAX_ROWS
from mailbot.tables import column_meaning

THRESHOLD = 70
# Where a sheet's header may stand, and how much text is read: bounds
# against hostile input, far above any real self-review.
HEADER_SEARCH = 50
MAX_TEXT_CHARS = 200_000
MAX_PROBLEMS = 50
# The key of a school's own results, when the sheet or text names none.
OWN = ""


class Criterion(StrEnum):
    LEADERSHIP = "leadership"
    CURRICULUM = "curriculum"
    CULTURE = "culture"
    PROFESSIONAL_DEVELOPMENT = "professional_development"
    RESOURCES = "resources"

    @property
    def full(self) -> str:
        return _FULL_NAMES[self]


_FULL_NAMES = {
    Criterion.LEADERSHIP: "Leadership & Vision",
    Criterion.CURRICULUM: "Use of Digital Technology to Deliver the Curriculum",
    Criterion.CULTURE: "School Culture",
    Criterion.PROFESSIONAL_DEVELOPMENT: "Professional Development",
    Criterion.RESOURCES: "Resources & Infrastructure",
}

# --- criterion names ------------------------------------------------------

# Words left out when names are compared, so that "Use of Digital
# Technology to Deliver the Curriculum", "Digital technology & the
# curriculum" and "1. Leadership and Vision (%)" are all known.
_CONNECTORS = frozenset({"and", "the", "of", "to", "in", "for", "a", "an",
                         "use", "using", "our", "on"})
_NOISE = frozenset({"criterion", "criteria", "area", "section", "score",
                    "scores", "percentage", "percent", "pct", "result",
                    "results", "rating", "per", "cent"})
_ALIASES: dict[Criterion, tuple[str, ...]] = {
    Criterion.LEADERSHIP: (
        "leadership vision", "vision leadership", "leadership", "vision",
        "l v", "lv"),
    Criterion.CURRICULUM: (
        "digital technology deliver curriculum", "digital technology",
        "digital technology curriculum", "deliver curriculum",
        "curriculum delivery", "curriculum", "digital tech",
        "learning teaching", "teaching learning", "dtc"),
    Criterion.CULTURE: ("school culture", "culture", "digital culture"),
    Criterion.PROFESSIONAL_DEVELOPMENT: (
        "professional development", "professional learning", "cpd", "pd",
        "clpl", "career long professional learning",
        "continuing professional development", "staff development"),
    Criterion.RESOURCES: (
        "resources infrastructure", "infrastructure resources", "resources",
        "resource", "infrastructure", "r i", "ri"),
}
_BY_KEY = {alias.replace(" ", ""): criterion
           for criterion, aliases in _ALIASES.items() for alias in aliases}
_LONGEST_ALIAS = max(len(a.split()) for v in _ALIASES.values() for a in v)
# The words a criterion's name can start with (never a connector).
_FIRST_WORDS = frozenset(alias.split()[0] for aliases in _ALIASES.values()
                         for alias in aliases)
_LETTERS = re.compile(r"[^\W\d_]+")
_PARENTHESES = re.compile(r"\(([^()]{0,80})\)")
# Row or column labels that sum up the others rather than name one.
_SUMMARY = frozenset({"total", "totals", "overall", "average", "mean",
                      "sum", "all"})


def _key(text: str, drop: frozenset[str] = _NOISE) -> str:
    words = _LETTERS.findall(text.lower().replace("&", " and "))
    return "".join(w for w in words
                   if w not in _CONNECTORS and w not in drop)


def criterion(name: str) -> Criterion | None:
    """The criterion a name stands for, or None; never a guess.

    Case, punctuation, numbering, "&" and "and", and words such as
    "score" or "%" do not matter; a short form in brackets counts.
    """
    name = name[:200]
    candidates = [name, _PARENTHESES.sub(" ", name),
                  *_PARENTHESES.findall(name)]
    for candidate in candidates:
        found = _BY_KEY.get(_key(candidate))
        if found is not None:
            return found
    return None


def _is_summary(label: str) -> bool:
    words = set(_LETTERS.findall(label.lower()))
    return bool(words) and bool(words & _SUMMARY) and criterion(label) is None


# --- results --------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    """How many of a criterion's statements got each answer."""

    addressed: int
    partially: int
    not_addressed: int

    @property
    def total(self) -> int:
        return self.addressed + self.partially + self.not_addressed


@dataclass(frozen=True)
class Score:
    """One criterion's percentage, 0 to 100, and the counts if given.

    `estimated` is true when the percentage was worked out from counts
    rather than given: the programme's own weighs essential statements
    more heavily.
    """

    percent: float
    counts: Counts | None = None
    estimated: bool = False


@dataclass(frozen=True)
class Results:
    """One school's self-review, by criterion; criteria not given are
    absent."""

    scores: dict[Criterion, Score] = field(default_factory=dict)

    def percent(self, which: Criterion) -> float | None:
        score = self.scores.get(which)
        return None if score is None else score.percent

    @property
    def missing(self) -> list[Criterion]:
        return [c for c in Criterion if c not in self.scores]


@dataclass(frozen=True)
class Reading:
    """What a sheet or a mail said: results by school, as written (OWN,
    "", for a school's own results when no school is named), and the
    problems found, each a sentence fit for a reply."""

    schools: dict[str, Results] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def percent_from_counts(counts: Counts) -> float | None:
    """The share of statements addressed, as a percentage; None if
    there are none.

    Partially addressed statements earn nothing: the programme does not
    publish how it weighs them, and a school should not be told it is
    ready when it may not be. This is an estimate all the same, since
    the programme weighs essential statements more heavily.
    """
    if counts.total <= 0:
        return None
    return 100 * counts.addressed / counts.total


def ready_for_validation(results: Results, threshold: float = THRESHOLD
                         ) -> tuple[bool, list[Criterion]]:
    """Whether every criterion reaches the threshold, and those that fall
    short of it, in the programme's order; a criterion with no result
    falls short."""
    short = [c for c in Criterion
             if c not in results.scores
             or results.scores[c].percent < threshold]
    return not short, short


def _consistency(name: str, percent: float, counts: Counts) -> str:
    """Why a stated percentage cannot come from these counts, or "".

    With weighting, only the extremes are certain: all addressed is
    100%, none addressed (nor partially) is 0%.
    """
    if counts.total == 0:
        return ""
    if counts.addressed == counts.total and percent < 100:
        return (f"{name}: every statement is counted as addressed, but the "
                f"score given is {_shown(percent)}%")
    if counts.addressed < counts.total and percent >= 100:
        return (f"{name}: 100% is given, but not every statement is counted "
                "as addressed")
    if counts.addressed == 0 and counts.partially == 0 and percent > 0:
        return (f"{name}: no statement is counted as addressed, but the "
                f"score given is {_shown(percent)}%")
    return ""


def _shown(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


class _Collector:
    """Gathers values by school and criterion from one or more sources,
    and makes them into Results, reporting what does not fit."""

    def __init__(self) -> None:
        self.percents: dict[tuple[str, Criterion], float] = {}
        self.counts: dict[tuple[str, Criterion], dict[str, int]] = {}
        self.fractions: dict[tuple[str, Criterion], tuple[int, int]] = {}
        self.order: dict[str, None] = {}
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS and text not in self.problems:
            self.problems.append(text)

    def percent(self, school: str, which: Criterion, value: float,
                where: str) -> None:
        self.order.setdefault(school)
        key = (school, which)
        if key in self.percents and self.percents[key] != value:
            self.problem(f"{where}{_named(school, which)} is given twice, as "
                         f"{_shown(self.percents[key])}% and "
                         f"{_shown(value)}%; the first is kept")
            return
        self.percents[key] = value

    def count(self, school: str, which: Criterion, kind: str, value: int,
              where: str) -> None:
        self.order.setdefault(school)
        given = self.counts.setdefault((school, which), {})
        if kind in given and given[kind] != value:
            self.problem(f"{where}{_named(school, which)}: two numbers of "
                         f"statements {_KIND_WORDS[kind]} ({given[kind]} and "
                         f"{value}); the first is kept")
            return
        given[kind] = value

    def fraction(self, school: str, which: Criterion, done: int, of: int,
                 where: str) -> None:
        self.order.setdefault(school)
        if of <= 0 or done > of:
            self.problem(f"{where}{_named(school, which)}: {done} addressed "
                         f"out of {of} cannot be right")
            return
        self.fractions.setdefault((school, which), (done, of))

    def reading(self) -> Reading:
        schools: dict[str, Results] = {}
        for school in self.order:
            scores = {}
            for which in Criterion:
                score = self._score(school, which)
                if score is not None:
                    scores[which] = score
            if scores:
                schools[school] = Results(scores)
        return Reading(schools, self.problems)

    def _score(self, school: str, which: Criterion) -> Score | None:
        key = (school, which)
        given = self.counts.get(key)
        counts = None if given is None else Counts(
            given.get("addressed", 0), given.get("partially", 0),
            given.get("not", 0))
        if key in self.percents:
            percent = self.percents[key]
            if counts is not None:
                clash = _consistency(_named(school, which), percent, counts)
                if clash:
                    self.problem(clash)
            return Score(percent, counts)
        if counts is not None:
            estimate = percent_from_counts(counts)
            if estimate is None:
                self.problem(f"{_named(school, which)}: no statements are "
                             "counted, so no score can be worked out")
                return None
            return Score(estimate, counts, estimated=True)
        if key in self.fractions:
            done, of = self.fractions[key]
            return Score(100 * done / of, estimated=True)
        return None


def _named(school: str, which: Criterion) -> str:
    return f"{school}, {which.full}" if school else which.full


_KIND_WORDS = {"addressed": "addressed", "partially": "partially addressed",
               "not": "not addressed"}

# --- values ---------------------------------------------------------------

_NUMBER = re.compile(
    r"([+-]?)(\d{1,7}(?:[.,]\d{1,20})?)\s{0,3}(%|per\s?cent|percent)?",
    re.IGNORECASE)


@dataclass(frozen=True)
class _Raw:
    """A percentage as written, before its scale is known."""

    value: float
    sign: bool  # written with "%" or "per cent"
    text: str


def _raw_percent(text: str) -> _Raw | None | str:
    """A number from a cell; None for an empty or "n/a" cell; a problem
    for anything else."""
    text = text.strip()
    if not text or text.lower() in ("-", "n/a", "na", "none", "tbc", "?"):
        return None
    match = _NUMBER.fullmatch(text)
    if not match:
        return f"{text[:40]!r} is not a percentage"
    value = float(match.group(2).replace(",", "."))
    if match.group(1) == "-":
        return f"{text[:40]!r} is below 0%"
    return _Raw(value, bool(match.group(3)), text)


def _scale(raws: Iterable[_Raw]) -> tuple[float, str]:
    """How a group of numbers without "%" is read: as fractions (x 100)
    when they include one like 0.85 and none above 1, else as percentages;
    with a problem when the group cannot tell."""
    bare = [r.value for r in raws if not r.sign]
    if not bare:
        return 100.0, ""
    if all(v <= 1 for v in bare) and any(not v.is_integer() for v in bare):
        return 100.0, ""
    if all(v in (0, 1) for v in bare) and 1 in bare:
        return 1.0, ("values of only 0 and 1 could be fractions or "
                     "percentages; they are read as percentages (write "
                     "100% if that is meant)")
    return 1.0, ""


def _percent(raw: _Raw, factor: float) -> float | str:
    """A percentage from a raw number and its group's scale, or a
    problem."""
    value = raw.value if raw.sign else raw.value * factor
    if factor == 1.0 and not raw.sign and 0 < raw.value < 1:
        return (f"{raw.text!r} is among percentages: is it "
                f"{_shown(raw.value * 100)}%?")
    if value > 100:
        return f"{raw.text!r} is over 100%"
    return round(value, 2)


def _is_text(cell: str) -> bool:
    return isinstance(_raw_percent(cell), str)


def _count(text: str) -> int | None | str:
    text = text.strip()
    if not text or text in ("-",):
        return None
    if re.fullmatch(r"\d{1,5}", text):
        return int(text)
    return f"{text[:40]!r} is not a number of statements"


# --- sheets ---------------------------------------------------------------

def from_attachment(attachment: Attachment) -> Reading:
    """The results in a CSV or workbook attachment (every sheet); an
    empty Reading for anything else. Raises SetAside, as
    spreadsheets.grids does, for a sheet refused for its size."""
    grids = spreadsheets.grids(attachment)
    collector = _Collector()
    for number, grid in enumerate(grids, 1):
        where = f"sheet {number}, " if len(grids) > 1 else ""
        _read_grid(grid, collector, where)
    return collector.reading()


def from_grid(grid: Sequence[Sequence[str]]) -> Reading:
    """The results in one grid of cells, as spreadsheets.grids gives."""
    collector = _Collector()
    _read_grid(grid, collector, "")
    return collector.reading()


def tidy(value: str) -> str:
    return " ".join(value.replace("\u00a0", " ").split())


_VALUE_HEADER = {"addressed", "partially", "not", "percent", "total"}


def _value_column(text: str) -> str | None:
    """What a header cell over values means: addressed, partially, not
    (addressed), percent or total (statements); None otherwise."""
    words = _LETTERS.findall(text.lower())
    if (not words and "%" not in text) or _NUMBER.fullmatch(text.strip()):
        return None
    if "%" in text or {"percentage", "percent", "score", "pct",
                       "result"} & set(words):
        return "percent"
    joined = " ".join(words)
    if "unaddressed" in words or re.search(r"\bnot (?:yet )?addressed", joined):
        return "not"
    if {"partially", "partly", "partial"} & set(words):
        return "partially"
    if "addressed" in words:
        return "addressed"
    if {"total", "statements", "questions"} & set(words):
        return "total"
    return None


def _read_grid(grid: Sequence[Sequence[str]], out: _Collector,
               where: str) -> None:
    rows = [[tidy(str(cell)) for cell in row[:MAX_COLUMNS]]
            for row in grid[:MAX_ROWS]]
    for index, row in enumerate(rows[:HEADER_SEARCH]):
        named = {col: criterion(cell) for col, cell in enumerate(row) if cell}
        across = {col: c for col, c in named.items() if c is not None}
        school_col = next((col for col, cell in enumerate(row) if cell
                           and column_meaning(cell) in ("school", "name")),
                          None)
        if len(set(across.values())) >= 2 or (across and school_col
                                               is not None):
            _wide(rows, index, across, school_col, out, where)
            return
        values = {col: m for col, cell in enumerate(row)
                  if (m := _value_column(cell)) is not None}
        numbers = any(isinstance(_raw_percent(cell), _Raw) for cell in row)
        if values and not across and not numbers:
            _long(rows, index, values, school_col, out, where)
            return
    _long(rows, -1, {}, None, out, where)


def _wide(rows: list[list[str]], header: int, across: dict[int, Criterion],
          school_col: int | None, out: _Collector, where: str) -> None:
    """One row per school, a column per criterion."""
    heads = rows[header]
    data = [(n, row) for n, row in enumerate(rows[header + 1:], header + 2)
            if any(row[col] for col in across if col < len(row))]
    if school_col is None:
        # The first column of text that is not a criterion names the school.
        school_col = next((col for col in range(len(heads))
                           if col not in across and any(
                               col < len(row) and _is_text(row[col])
                               for _, row in data)), None)
    _unknown_columns(heads, across, school_col, rows[header + 1:], out, where)

    # One scale for the whole grid: a workbook's percentage cells are
    # fractions, and a column of 100%s alone reads as 1s.
    cells: list[tuple[int, str, Criterion, _Raw]] = []
    for col, which in across.items():
        for n, row in data:
            school = row[school_col] if school_col is not None \
                and school_col < len(row) else ""
            if _is_summary(school):
                continue
            if not school and (school_col is not None or len(data) > 1):
                out.problem(f"{where}row {n}: results with no school name")
                continue
            raw = _raw_percent(row[col]) if col < len(row) else None
            if isinstance(raw, str):
                out.problem(f"{where}row {n}, {which.full}: {raw}")
            elif raw is not None:
                cells.append((n, school, which, raw))
            elif school:
                out.problem(f"{where}{school}: no value for {which.full}")
    factor, doubt = _scale(raw for *_, raw in cells)
    if doubt:
        out.problem(f"{where}{doubt}")
    for n, school, which, raw in sorted(cells, key=lambda c: c[0]):
        value = _percent(raw, factor)
        if isinstance(value, str):
            out.problem(f"{where}row {n}, {which.full}: {value}")
        else:
            out.percent(school, which, value, where)


def _unknown_columns(heads: list[str], across: dict[int, Criterion],
                     school_col: int | None, data: list[list[str]],
                     out: _Collector, where: str) -> None:
    """Report a header that is not a criterion over a column of numbers."""
    for col, head in enumerate(heads):
        if col in across or col == school_col or not head \
                or column_meaning(head) or _is_summary(head):
            continue
        numbers = [row[col] for row in data if col < len(row) and row[col]]
        if numbers and all(isinstance(_raw_percent(c), _Raw)
                           for c in numbers):
            out.problem(f"{where}the column {head[:60]!r} is not one of the "
                        "five criteria; it was not read")


def _long(rows: list[list[str]], header: int, values: dict[int, str],
          school_col: int | None, out: _Collector, where: str) -> None:
    """One row per criterion (per school and criterion with a school
    column), with a percentage or counts; without a header, a label and
    one percentage."""
    school = OWN
    for row in rows[:max(header, 0)]:
        pair = [cell for cell in row if cell]
        if len(pair) == 2 and column_meaning(pair[0]) in ("school", "name"):
            school = pair[1]

    found: list[tuple[int, str, Criterion, dict[str, str]]] = []
    unknown: list[tuple[int, str, str]] = []
    for n, row in enumerate(rows[header + 1:], header + 2):
        label_col = next((col for col, cell in enumerate(row) if cell
                          and col not in values and col != school_col), None)
        if label_col is None:
            continue
        label = row[label_col]
        cells = {m: row[col] for col, m in values.items() if col < len(row)}
        if header < 0:
            rest = [cell for cell in row[label_col + 1:] if cell]
            if len(rest) != 1:
                continue
            cells = {"percent": rest[0]}
        if not any(cells.values()) or _is_summary(label):
            continue
        which = criterion(label)
        name = row[school_col] if school_col is not None \
            and school_col < len(row) else school
        if which is None:
            unknown.append((n, label, cells.get("percent", "")))
        else:
            found.append((n, name, which, cells))

    for n, label, value in unknown:
        # Without a header, a row is known to be results only beside others.
        if header >= 0 or (found and isinstance(_raw_percent(value), _Raw)):
            out.problem(f"{where}row {n}: {label[:60]!r} is not one of the "
                        "five criteria; it was not read")

    raws = [(n, name, which, raw) for n, name, which, cells in found
            if isinstance(raw := _raw_percent(cells.get("percent", "")), _Raw)]
    factor, doubt = _scale(raw for *_, raw in raws)
    if doubt:
        out.problem(f"{where}{doubt}")
    for n, name, which, cells in found:
        _long_row(n, name, which, cells, factor, out, where)


def _long_row(n: int, school: str, which: Criterion, cells: dict[str, str],
              factor: float, out: _Collector, where: str) -> None:
    raw = _raw_percent(cells.get("percent", ""))
    if isinstance(raw, str):
        out.problem(f"{where}row {n}, {which.full}: {raw}")
    elif raw is not None:
        value = _percent(raw, factor)
        if isinstance(value, str):
            out.problem(f"{where}row {n}, {which.full}: {value}")
        else:
            out.percent(school, which, value, where)

    counted: dict[str, int] = {}
    for kind in ("addressed", "partially", "not", "total"):
        number = _count(cells.get(kind, ""))
        if isinstance(number, str):
            out.problem(f"{where}row {n}, {which.full}: {number}")
        elif number is not None:
            counted[kind] = number
    total = counted.pop("total", None)
    if counted and total is not None and sum(counted.values()) != total:
        out.problem(f"{where}row {n}, {which.full}: the counts add up to "
                    f"{sum(counted.values())}, not the {total} given as total")
    for kind, number in counted.items():
        out.count(school, which, kind, number, where)


# --- mail text ------------------------------------------------------------

_TOKEN = re.compile(
    r"(?P<num>\d{1,9}(?:[.,]\d{1,20})?)(?P<pct>[ \t]?(?:%|per[ \t]?cent\b"
    r"|percent\b))?"
    r"|(?P<word>[^\W\d_]+(?:['\u2019][^\W\d_]+)?)"
    r"|(?P<nl>\n)"
    r"|(?P<stop>[.!?;])"
    r"|(?P<slash>/)"
    r"|(?P<sep>[:=|\-\u2013\u2014\t(),])"
    r"|(?P<other>\S)",
    re.IGNORECASE)
_BACKWARD = frozenset({"in", "for", "under", "within", "across", "on"})
_FILLER = frozenset({"statements", "statement", "questions", "are", "were",
                     "fully", "have", "been", "as", "marked", "answered"})


@dataclass
class _Token:
    kind: str  # num, pct, word, nl, stop, slash, sep, other
    text: str
    value: float = 0.0
    used: bool = False  # a kind word already claimed by a number


def _tokens(text: str) -> list[_Token]:
    found = []
    for match in _TOKEN.finditer(text[:MAX_TEXT_CHARS].replace("\r", "")):
        group = match.lastgroup or "other"
        if group in ("num", "pct"):
            number = float(match.group("num").replace(",", "."))
            kind = "pct" if match.group("pct") else "num"
            found.append(_Token(kind, match.group(), number))
        else:
            found.append(_Token(group, match.group().lower()))
    return found


def _kind_at(tokens: list[_Token], i: int) -> tuple[str, int] | None:
    """The answer named by words starting at token i ("not yet addressed",
    "partially", ...) and how many tokens it takes."""
    words = [t.text if t.kind == "word" else "" for t in tokens[i:i + 4]]
    if not words or not words[0]:
        return None
    first = words[0]
    if first == "unaddressed":
        return "not", 1
    if first == "not":
        size = 1
        while size < len(words) and words[size] in ("yet", "fully"):
            size += 1
        if size < len(words) and words[size] == "addressed":
            return "not", size + 1
        return ("not", size) if size == 1 else None
    if first in ("partially", "partly", "partial"):
        return "partially", 2 if words[1:2] == ["addressed"] else 1
    if first == "addressed":
        return "addressed", 1
    return None


def _kind_before(tokens: list[_Token], i: int) -> tuple[str, int] | None:
    """The unclaimed answer named just before token i ("addressed: 12"),
    and where it starts."""
    j = i - 1
    while j >= 0 and tokens[j].kind == "sep" and tokens[j].text in ":=-":
        j -= 1
    for start in (j - 2, j - 1, j):
        if start < 0:
            continue
        found = _kind_at(tokens, start)
        if found and start + found[1] - 1 == j and not tokens[start].used:
            return found[0], start
    return None


def _kind_after(tokens: list[_Token], i: int) -> tuple[str, int] | None:
    j = i + 1
    while j < len(tokens) and tokens[j].kind == "word" \
            and tokens[j].text in _FILLER:
        j += 1
    found = _kind_at(tokens, j) if j < len(tokens) else None
    return (found[0], j) if found else None


def _mention_at(tokens: list[_Token], i: int) -> tuple[Criterion, int] | None:
    """The criterion named by the words from token i, longest first, and
    the index after it."""
    if tokens[i].kind != "word" or tokens[i].text not in _FIRST_WORDS:
        return None
    words: list[tuple[str, int]] = []
    j = i
    while j < len(tokens) and j < i + 2 * _LONGEST_ALIAS \
            and len(words) < _LONGEST_ALIAS:
        token = tokens[j]
        if token.kind == "word" and token.text not in _CONNECTORS:
            words.append((token.text, j + 1))
        elif not (token.kind == "word" or token.text in "&+"):
            break
        j += 1
    for size in range(len(words), 0, -1):
        found = _BY_KEY.get("".join(w for w, _ in words[:size]))
        if found is not None:
            return found, words[size - 1][1]
    return None


@dataclass
class _Quantity:
    kind: str  # percent (raw), addressed, partially, not, fraction
    raw: _Raw | None = None
    count: int = 0
    of: int = 0
    line: int = 0


def from_text(text: str) -> Reading:
    """The results a school writes in a mail: "Leadership & Vision: 80%"
    lines, "12 addressed, 3 partially and 1 not addressed in School
    Culture", "Culture - 10 out of 12 addressed", or a small pasted table.

    Everything is the school's own (OWN). A number is given to the
    criterion named before it on its line or in its sentence, or to one
    named just after it with "in" or "for" ("75% in Culture").
    """
    collector = _Collector()
    text = text[:MAX_TEXT_CHARS]
    if not _DIGIT.search(text) or not (_VALUE_WORDS.search(text)
                                       or _NAME_WORDS.search(text)):
        return collector.reading()
    text = _pasted_tables(text, collector)
    tokens = _tokens(text)
    _Reader(tokens, text, collector).read()
    return collector.reading()


# Every way of giving results that from_text reads has a number, and
# either a word saying what numbers are (a percentage, statements
# addressed, "9 out of 10", a score) or a criterion's name: text without
# both (most comments) is not read further.
_DIGIT = re.compile(r"\d")
_VALUE_WORDS = re.compile(
    r"%|per\s*cent|percent|address|out\s+of|\d\s*/\s*\d|score|total",
    re.IGNORECASE)
_NAME_WORDS = re.compile(
    r"\b(?:" + "|".join(sorted(
        {word for aliases in _ALIASES.values() for alias in aliases
         for word in alias.split() if len(word) > 1}, key=len, reverse=True))
    + r")\b|\b[lr]\W{0,3}[vi]\b", re.IGNORECASE)


def may_give_scores(text: str) -> bool:
    """False only where from_text(text) surely finds no score, tested in
    a fraction of its time: most mail with numbers is prose.

    from_text gives a number only to a criterion named in the same
    stretch of text, between sentence ends and blank lines. This splits
    the text at fewer places than from_text does (only at a stop followed
    by a space or a line break, and at lines of spaces alone), so each
    piece holds one or more of its stretches, and asks whether a piece
    holds both a digit and what may be a criterion's name. Text with
    lines that may be a pasted table is always read.
    """
    text = text[:MAX_TEXT_CHARS]
    if not _DIGIT.search(text):
        return False
    # Two lines in a row that _pasted_tables would split into cells
    # (guards a bug: a quicker test missed spaces beside a no-break one).
    # A line is split only if it has a tab, "|" or two spaces (where
    # _split_cells can find two cells), and only until a pair is found.
    cells = (("\t" in line or "|" in line or "  " in line)
             and len(_split_cells(line)) >= 2 for line in text.split("\n"))
    if any(a and b for a, b in itertools.pairwise(cells)):
        return True
    return any(_DIGIT.search(piece) and _may_name(piece)
               for piece in _PIECES.split(text.replace("\r", "")))


def _may_name(piece: str) -> bool:
    """Whether _mention_at may find a criterion in `piece`: a name's words
    (lowered one by one, as _tokens does) stand together, with connectors,
    "&" or "+" between them and nothing else, so each run of letters,
    spaces, "&", "+" and apostrophes is looked at, its words split at
    apostrophes too (which finds more, never less)."""
    # Every word of a run is a run of letters of the piece, and a name
    # starts with one of _FIRST_WORDS: most pieces hold none, and are
    # done with here. In ASCII, letters are [A-Za-z] and lowering the
    # piece lowers each word, so a simpler pattern finds the same words.
    if piece.isascii():
        every: Iterable[str] = _ASCII_LETTER_RUNS.findall(piece.lower())
    else:
        every = map(str.lower, _LETTER_RUNS.findall(piece))
    if _FIRST_WORDS.isdisjoint(every):
        return False
    for run in _NAME_RUNS.findall(piece):
        words = [w for w in map(str.lower, _LETTER_RUNS.findall(run))
                 if w not in _CONNECTORS]
        for i, word in enumerate(words):
            if word in _FIRST_WORDS and any(
                    "".join(words[i:i + size]) in _BY_KEY
                    for size in range(1, _LONGEST_ALIAS + 1)):
                return True
    return False


# A stop followed by a space or a line break, or a line of spaces alone
# between line breaks: written to start with one set of characters, so
# that the search skips to them quickly (the same matches as
# r"[.!?;](?=[ \n])|\n *\n").
_PIECES = re.compile(r"[.!?;\n](?:(?<=[.!?;])(?=[ \n])|(?<=\n) *\n)")
_LETTER_RUNS = re.compile(r"[^\W\d_]+")
_ASCII_LETTER_RUNS = re.compile(r"[a-z]+")  # the same, in lowered ASCII
_NAME_RUNS = re.compile(r"[^\W\d_](?:[^\W\d_]|[\s&+'\u2019])*")
_WIDE_SPACES = re.compile(r" {2,}")


def _split_cells(line: str) -> list[str]:
    line = line.strip()
    if "\t" in line:
        cells = line.split("\t")
    elif "|" in line:
        cells = line.strip("|").split("|")
    else:
        cells = _WIDE_SPACES.split(line)
    return [cell.strip() for cell in cells]


def _pasted_tables(text: str, out: _Collector) -> str:
    """Read runs of lines split by tabs, "|" or wide spaces whose header
    names counts or percentages, and blank them in the text returned."""
    lines = text.split("\n")
    start = 0
    while start < len(lines):
        end = start
        while end < len(lines) and len(_split_cells(lines[end])) >= 2 \
                and lines[end].strip():
            end += 1
        if end - start >= 2:
            grid = [_split_cells(line) for line in lines[start:end]
                    if not re.fullmatch(r"[\s|:+-]*", line)]
            head = grid[0]
            if any(_value_column(cell) for cell in head) or sum(
                    criterion(cell) is not None for cell in head) >= 2:
                _read_grid(grid, out, "")
                lines[start:end] = [""] * (end - start)
        start = max(end, start + 1)
    return "\n".join(lines)


# Where the label of a "Label: 80%" line ends.
_LABEL_END = re.compile(r"[:=\t|]|\s[-\u2013]\s|\d")


class _Reader:
    """Walks the tokens once, giving each quantity to a criterion."""

    def __init__(self, tokens: list[_Token], text: str,
                 out: _Collector) -> None:
        self.tokens, self.out = tokens, out
        self.lines = text.split("\n")
        self.current: Criterion | None = None
        self.pending: list[_Quantity] = []
        self.line = 0
        # Whether the current criterion was named first on its line.
        self.line_start, self.labelled = True, False
        self.raws: list[tuple[Criterion, _Quantity]] = []
        self.reported: set[int] = set()  # lines with numbers unplaced

    def read(self) -> None:
        tokens, i = self.tokens, 0
        while i < len(tokens):
            token = tokens[i]
            if token.kind == "nl":
                # A "Label: value" line is whole: what the next line holds
                # is not its; a sentence may run on to the next line.
                blank = i + 1 < len(tokens) and tokens[i + 1].kind == "nl"
                given = bool(self.pending)
                self._flush(end=blank or (given and self.labelled))
                self.line, self.line_start = self.line + 1, True
            elif token.kind == "stop":
                self._flush(end=True)
            elif token.kind == "word":
                mention = _mention_at(tokens, i)
                if mention is not None:
                    self._mention(mention[0], i)
                    self.labelled = self.line_start and self.current is not None
                    self.line_start = False
                    i = mention[1]
                    continue
                self.line_start = False
            elif token.kind in ("num", "pct"):
                self.line_start = False
                i = self._number(i)
                continue
            i += 1
        self._flush(end=True)
        self._percents()

    def _mention(self, which: Criterion, i: int) -> None:
        before = i - 1
        while before >= 0 and self.tokens[before].text == "the":
            before -= 1
        backward = before >= 0 and self.tokens[before].text in _BACKWARD
        if backward and self.pending:
            self._give(which)
            self.current = None
            return
        self._flush(end=False)
        self.current = which

    def _number(self, i: int) -> int:
        tokens, token = self.tokens, self.tokens[i]
        quantity = _Quantity("percent", line=self.line)
        after = i + 1
        if token.kind == "pct":
            quantity.raw = _Raw(token.value, True, token.text)
        elif (of := self._fraction(i)) is not None:
            quantity, after = of
        elif not token.value.is_integer():
            quantity.raw = _Raw(token.value, False, token.text)
            if not self._label_line(i):
                return after
        elif (kind := _kind_before(tokens, i) or _kind_after(tokens, i)):
            tokens[kind[1]].used = True
            quantity = _Quantity(kind[0], count=int(token.value),
                                 line=self.line)
        elif self._label_line(i):
            quantity.raw = _Raw(token.value, False, token.text)
        else:
            return after
        self.pending.append(quantity)
        return after

    def _fraction(self, i: int) -> tuple[_Quantity, int] | None:
        """"10 out of 12 addressed", "10/12 addressed"."""
        tokens = self.tokens
        j = i + 1
        if j < len(tokens) and tokens[j].text == "out":
            j += 1
        if j < len(tokens) and tokens[j].text in ("of", "/"):
            j += 1
        else:
            return None
        if j >= len(tokens) or tokens[j].kind != "num" \
                or not tokens[i].value.is_integer() \
                or not tokens[j].value.is_integer():
            return None
        kind = _kind_after(tokens, j)
        if kind is None or kind[0] != "addressed":
            return None
        tokens[kind[1]].used = True
        return _Quantity("fraction", count=int(tokens[i].value),
                         of=int(tokens[j].value), line=self.line), j + 1

    def _label_line(self, i: int) -> bool:
        """Whether a bare number stands alone after a criterion on its
        line: "Curriculum: 75" or "Culture - 0.9"."""
        tokens = self.tokens
        after = tokens[i + 1] if i + 1 < len(tokens) else None
        if after is not None and after.kind not in ("nl", "stop") \
                and after.text not in (",", "|", ")"):
            return False
        j = i - 1
        while j >= 0 and tokens[j].kind == "sep":
            j -= 1
        return j >= 0 and tokens[j].kind == "word" and self.current is not None

    def _flush(self, end: bool) -> None:
        if self.pending:
            if self.current is not None:
                self._give(self.current)
            else:
                self._unplaced()
        if end:
            self.current, self.labelled = None, False

    def _give(self, which: Criterion) -> None:
        for quantity in self.pending:
            if quantity.kind == "percent":
                self.raws.append((which, quantity))
            elif quantity.kind == "fraction":
                self.out.fraction(OWN, which, quantity.count, quantity.of, "")
            else:
                self.out.count(OWN, which, quantity.kind, quantity.count, "")
        self.pending = []

    def _unplaced(self) -> None:
        """Report numbers no criterion was named for, when they look like
        results: counts always, a percentage on a "Label: 80%" line."""
        for quantity in self.pending:
            if quantity.line in self.reported:
                continue
            self.reported.add(quantity.line)
            line = tidy(self.lines[quantity.line][:200]) if quantity.line < len(
                self.lines) else ""
            label = tidy(_LABEL_END.split(line, maxsplit=1)[0])
            if _is_summary(label):
                continue
            if quantity.kind != "percent":
                self.out.problem(f"{line[:80]!r}: no criterion is "
                                 "named for these numbers")
            elif label and len(label.split()) <= 6 and label != line:
                self.out.problem(f"{label[:60]!r} is not one of the five "
                                 "criteria; it was not read")
        self.pending = []

    def _percents(self) -> None:
        raws = [q.raw for _, q in self.raws if q.raw is not None]
        factor, doubt = _scale(raws)
        if doubt:
            self.out.problem(doubt)
        for which, quantity in self.raws:
            assert quantity.raw is not None
            value = _percent(quantity.raw, factor)
            if isinstance(value, str):
                self.out.problem(f"{which.full}: {value}")
            else:
                self.out.percent(OWN, which, value, "")
