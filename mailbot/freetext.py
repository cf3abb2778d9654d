"""Reading a nomination written as prose, labelled lines and lists of schools.

Only what the sender wrote in this message counts: quoted history,
signatures and confidentiality footers are cut away first, except for
our own "missing information" form, which people fill in inside a reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from mailbot.phrases import Anchored, ascii_except, fold
from mailbot.tables import SCHOOL_WORD, column_meaning, field_label

EMAIL = re.compile(r"[\w.+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")

# What people write for "not given", including the blanks of our form.
PLACEHOLDER = re.compile(
    r"_+|\?+|-+|\[\s*missing\s*\]|\(?\s*missing\s*\)?|n/?a|tbc|tba|none",
    re.IGNORECASE,
)


_ITEM = re.compile(r"(?:\(?\d{1,2}[.)]|[-*\u2022\u00b7\u2013\u25aa\u2043>]"
                   r"|[A-Za-z][.)])\s+(?P<rest>\S.*)")
_SPLIT = re.compile(r"\s+[-\u2013\u2014]\s+|\s*[,;|\t]\s*|:\s+|\s{3,}")
_SECTION = re.compile(
    r"(?:the |our |participating |list of |cluster |other |more |partner "
    r"|member |feeder |primary |secondary )*(?:schools?|establishments"
    r"|contacts)"
    r"\b[^:]{0,60}:\s*(?P<rest>.*)", re.IGNORECASE)
_FORM_MARKER = re.compile(r"schools\s*\(one per line", re.IGNORECASE)
_LABELLED = re.compile(
    r"(?P<label>[A-Za-z][A-Za-z /'-]{0,40}?)\s*(?::|\t|\s[-\u2013]\s)\s*"
    r"(?P<value>.*)")
_PROSE_LIST = re.compile(
    r"\b(?:schools?|cluster|asg|group|primaries|secondaries)\b[^.:\n]{0,40}?"
    r"\b(?:are|include|"
    r"includes|comprises?|consists? of|is made up of|will be)\b:?\s+"
    r"(?P<list>.+?)(?:(?<!\bSt)(?<!\bMr)(?<!\bMrs)(?<!\bDr)\.(?=\s|$)|$)",
    re.IGNORECASE | re.DOTALL)
# The same, tried only where one of the words it starts with stands.
_PROSE_LISTS = Anchored(_PROSE_LIST, ("school", "cluster", "asg", "group",
                                      "primaries", "secondaries"))
# What each of its verbs holds, in lower case: where none stands, it
# cannot match.
_LIST_VERBS = ("are", "include", "compris", "consist", "is made up of",
               "will be")
_LIST_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+|\s*;\s*|\s+&\s+")
_I_AM_LEAD = re.compile(
    r"\bI(?:'m|\u2019m| am|'ll be|\u2019ll be| will be| shall be| would be"
    r"| will act as)\s+(?:the\s+)?(?:cluster(?:'s)?\s+)?lead\b"
    r"|\bmyself as (?:the )?lead\b", re.IGNORECASE)
_LEAD_WORD = re.compile(r"lead\b")  # which _I_AM_LEAD ends with, folded

_SIGN_OFF = re.compile(
    r"(?:(?:many|with|kind|best|warm|warmest|all the) )?(?:thanks|thank you"
    r"|regards|wishes|best)(?: again| very much| in advance)?[,.!]*"
    r"|cheers[,.!]*|yours(?: sincerely| faithfully| truly)?[,.!]*"
    r"|sent from my .*", re.IGNORECASE)
# What _SIGN_OFF's words start with (see ascii_except): a line that
# starts otherwise is no sign-off.
_NOT_SIGN_OFF = ascii_except("mwkbatrcys")
_HISTORY = re.compile(
    r"-{2,}\s*original message\s*-{2,}|_{10,}|on .{5,200}wrote:"
    r"|-{5,}\s*forwarded message\s*-{5,}|begin forwarded message:",
    re.IGNORECASE)
# What a line that _is_history starts with: "-", "_", "On", "Begin", "From".
_MAY_BE_HISTORY = frozenset("-_oObBfF")
_HEADER_LINE = re.compile(r"(?:from|sent|date|to|cc|subject):\s",
                          re.IGNORECASE)
_DISCLAIMER_WORDS = (r"confidential|intended (?:solely )?for|intended recipient"
                     r"|disclaimer|privileged|viruses|opinions expressed")
_DISCLAIMER = re.compile(_DISCLAIMER_WORDS, re.IGNORECASE)
_DISCLAIMERS = Anchored(_DISCLAIMER, ("confidential", "intended", "disclaimer",
                                      "privileged", "viruses", "opinions"))
_QUOTE_MARKS = re.compile(r"^(?:\s*>)+ ?")
_CLUSTER_NAME_LABEL = re.compile(r"\s*cluster name\s*:", re.IGNORECASE)
_FROM_FIELD = re.compile(r"from:\s*\S", re.IGNORECASE)
_SENT_FIELD = re.compile(r"\s*(?:sent|date):", re.IGNORECASE)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_ABBREVIATION_END = re.compile(r"\b(?:St|Mr|Mrs|Ms|Dr|No)\.$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_ASIDE = re.compile(r"\(([^()]*)\)")
_BRACKETED = re.compile(r"\([^()]*\)")
_PHASE_WORDS = re.compile(r"(?:a |the )?(?:primary|secondary)(?: school)?"
                          r"|p|s|high school", re.IGNORECASE)
_PRIMARY = re.compile(r"\bprimary\b|\bbun[- ]sgoil\b|^p$|\bps\b|\bp\. ?s\b"
                      r"|\bp[1-7]\b")
_SECONDARY = re.compile(
    r"\bsecondary\b|\bhigh\b|\bacademy\b|\bgrammar\b|\b[àa]rd[- ]sgoil\b"
    r"|^s$|\bhs\b|\bh\. ?s\b|\bs[1-6]\b")
_BRACKETS = re.compile(r"[<>()\[\]]")
_ROLE_LABEL = re.compile(r"^(?:contact(?: name)?|head ?teacher|ht|dht|lead|c/o)\b"
                         r"\s*[:\-]?\s*", re.IGNORECASE)

_TITLE = r"(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?\s+)"
_PERSON = re.compile(rf"{_TITLE}?([^\W\d_][\w'\u2019-]*"
                     rf"(?:\s+[^\W\d_][\w'\u2019-]*){{0,3}})")
_ROLE_WORDS = {
    "head", "teacher", "headteacher", "depute", "deputy", "principal",
    "school", "primary", "academy", "high", "secondary", "council", "team",
    "office", "manager", "officer", "class", "business", "admin", "digital",
    "leader", "lead", "ht", "dht", "pt", "the", "and", "contact", "email",
    "tel", "phone", "cluster", "local", "authority", "status", "awarded",
}
_PARTICLES = {"de", "van", "von", "mac", "mc", "nic", "da", "di", "le", "la",
              "du", "of"}


@dataclass(frozen=True)
class Mention:
    """A school as a line or sentence of free text describes it."""

    name: str
    phase: str | None = None
    contact: str | None = None
    email: str | None = None
    remark: str = ""  # the rest of the line, for the already-awarded check
    awarded_cell: str = ""  # the answer under an "Already awarded:" label


@dataclass
class Reading:
    fields: dict[str, str] = field(default_factory=dict)
    schools: list[Mention] = field(default_factory=list)
    lead_is_sender: bool = False
    # Lines outside any list that read as a whole school row, with its
    # phase and address ("Eastfield PS - primary - Martin Lowe - m@..."),
    # and schools written as blocks of lines: schools if there are two or
    # more (one could be a signature).
    rows: list[Mention] = field(default_factory=list)


def tidy(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def given(text: str | None) -> str | None:
    """`text` tidied, or None when empty or a placeholder such as "____"."""
    if text is None:
        return None
    text = tidy(text).strip(" .,;:")
    return None if not text or PLACEHOLDER.fullmatch(text) else text


def phase_of(text: str) -> str | None:
    """"primary" or "secondary" from a value or a school's name."""
    lowered = text.lower()
    primary = list(_PRIMARY.finditer(lowered))
    secondary = list(_SECONDARY.finditer(lowered))
    if primary and secondary:
        # "Glenbrae Academy Primary" is a primary: the last word decides.
        return ("primary" if primary[-1].start() > secondary[-1].start()
                else "secondary")
    return "primary" if primary else "secondary" if secondary else None


def person(text: str) -> str | None:
    """A person's name in `text`, with any role or label before it removed."""
    text = tidy(_BRACKETS.sub(" ", text))
    text = _ROLE_LABEL.sub("", text).strip(" .,")
    match = _PERSON.fullmatch(text)
    if not match:
        return None
    words = text.split()
    if len(words) < 2 or any(w.lower().strip(".") in _ROLE_WORDS
                             for w in words):
        return None
    if not all(w[0].isupper() or w.lower() in _PARTICLES for w in words):
        return None
    return text


def _unquote(line: str) -> str:
    return _QUOTE_MARKS.sub("", line)


def _take_form(lines: list[str]) -> list[str]:
    """Lift our own form out of `lines`, wherever and however quoted."""
    marker = next((i for i, line in enumerate(lines)
                   if _FORM_MARKER.search(_unquote(line))), None)
    if marker is None:
        return []
    start = marker
    for i in range(marker - 1, max(marker - 8, -1), -1):
        if _CLUSTER_NAME_LABEL.match(_unquote(line := lines[i])):
            start = i
            break
        if not _unquote(line).strip():
            break
    end = marker + 1
    while end < len(lines) and _ITEM.fullmatch(_unquote(lines[end]).strip()):
        end += 1
    form = [_unquote(line) for line in lines[start:end]]
    lines[start:end] = [""] * (end - start)
    return form


def own_text(text: str, forwarded: bool = False) -> str:
    """What the sender wrote in this message, with our form appended.

    Quoted history ends the text of a reply; in a forward it is the
    point, so only its header lines are dropped.
    """
    lines = text.replace("\r\n", "\n").splitlines()
    form = _take_form(lines) if _may_hold(text, "(one per line") else []
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped[:1] in _MAY_BE_HISTORY and _is_history(lines, index):
            if not forwarded:
                break
            continue
        if forwarded and _HEADER_LINE.match(stripped):
            continue
        if stripped in ("--", "__"):  # "-- " once stripped
            break
        if stripped[:1] not in _NOT_SIGN_OFF and _SIGN_OFF.fullmatch(stripped) \
                and any(k.strip() for k in kept):
            if not forwarded:
                break
            continue
        if not stripped.startswith(">"):
            kept.append(line)
    text = "\n".join(kept)
    if _DISCLAIMERS.search(text, fold(text)):
        paragraphs = text.split("\n\n")
        text = "\n\n".join(p for p in paragraphs if not _DISCLAIMER.search(p)
                           or _ITEM.search(p) and "@" in p)
    return text + ("\n\n" + "\n".join(form) if form else "")


def _may_hold(text: str, word: str) -> bool:
    """False when `text` surely does not hold `word` (lower case), in any
    case: a cheap test before a case-insensitive pattern that needs it."""
    folded = fold(text)
    return folded is None or word in folded


def _is_history(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    if _HISTORY.fullmatch(line):
        return True
    if line.startswith("On ") and index + 1 < len(lines) \
            and _HISTORY.fullmatch(f"{line} {lines[index + 1].strip()}"):
        return True
    # Outlook's reply header: "From: ..." then "Sent:" or "Date:" below it.
    return bool(_FROM_FIELD.match(line)) and any(
        _SENT_FIELD.match(following)
        for following in lines[index + 1:index + 4])


def _sentences(line: str) -> list[str]:
    parts = _SENTENCE_BREAK.split(line)
    merged: list[str] = []
    for part in parts:
        if merged and _ABBREVIATION_END.search(merged[-1]):
            merged[-1] += " " + part
        else:
            merged.append(part)
    return merged


def _labelled(text: str) -> tuple[str, str, str, str] | None:
    """(field, column meaning, value, label) of "Label: value", or None."""
    text = text.strip()
    if ":" not in text and "\t" not in text and "-" not in text \
            and "\u2013" not in text:
        return None  # no ":", tab or dash: _LABELLED cannot match
    match = _LABELLED.fullmatch(text)
    if not match:
        return None
    label = match.group("label")
    name = field_label(label) or ""
    meaning = column_meaning(label) or ""
    if not name and not meaning:
        return None
    value = _sentences(match.group("value"))[0] if match.group("value") else ""
    return name, meaning, value, label


def _is_school_name(name: str) -> bool:
    """Whether free text such as "Kirkton Primary" is a school's name and
    not a sentence that happens to say "school"."""
    words = name.split()
    small = {"of", "the", "and", "na", "nan", "an", "a'", "a", "de", "an t-"}
    return len(words) <= 8 and all(
        w[0].isupper() or w[0].isdigit() or w.lower() in small for w in words
    ) and bool(SCHOOL_WORD.search(name))


def mention(text: str, need_school_word: bool = True) -> Mention | None:
    """The school a line such as "Kirkton PS (primary) - Fiona Baird - f@x"
    describes, or None if it names no school."""
    if need_school_word and not SCHOOL_WORD.search(text):
        # The name is some of the text's words, as they stand in it and
        # with only spaces or stops put beside them: without such a word
        # in the text, it has none and _is_school_name is False.
        return None
    text = text.strip().replace("\u00a0", " ")
    asides = _ASIDE.findall(text)
    bare = _BRACKETED.sub(" ; ", text)
    parts = [tidy(p).strip(" .-\u2013\u2014") for p in _SPLIT.split(bare)]
    parts = [p for p in parts if p and not PLACEHOLDER.fullmatch(p)]
    if not parts or "@" in parts[0] or text.endswith(":"):
        return None
    name = parts[0].strip(" .,:")
    phase = contact = email = None
    # "Mrs Joanne Hamilton at Robert Smillie Memorial Primary School"
    at = _AT_SCHOOL.fullmatch(name)
    if at and _is_school_name(at.group("school")):
        who = at.group("who")
        if person(who) or who.lower() in ("myself", "me"):
            name, contact = at.group("school"), person(who)
    if need_school_word and not _is_school_name(name) or len(name) > 80 \
            or column_meaning(parts[0]):
        return None

    remarks = []
    details = parts[1:] + [a for aside in asides for a in _SPLIT.split(aside)]
    for part in details:
        part = part.strip(" .")
        if not part or PLACEHOLDER.fullmatch(part):
            continue
        found = EMAIL.search(part)
        if found:
            email = email or found.group()
            part = part.replace(found.group(), " ")
        if _PHASE_WORDS.fullmatch(part.strip()):
            phase = phase or phase_of(part)
        elif person(part) and not contact:
            contact = person(part)
        elif not found:
            remarks.append(part)
    return Mention(name, phase, contact, email, " ".join(remarks))


_AT_SCHOOL = re.compile(r"(?P<who>\S.{0,60}?)\s+at\s+(?P<school>\S.*)")


def _prose_schools(paragraph: str) -> list[Mention]:
    flat = " ".join(paragraph.split())
    folded = fold(flat)
    if folded is not None and not any(verb in folded for verb in _LIST_VERBS):
        return []  # the words are in `folded` wherever the verbs match
    found = []
    for match in _PROSE_LISTS.finditer(flat, folded):
        if _ITEM.match(match.group("list")):
            continue  # a bulleted list, which is read line by line
        items = _LIST_SPLIT.split(_protect(match.group("list")))
        listed: list[Mention] = []
        for item in items:
            item = item.replace("\x00", ",")
            school = mention(item)
            if school:
                listed.append(school)
            elif listed:
                listed[-1] = _with_contact(listed[-1], item)
        found += listed
    return found


def _with_contact(school: Mention, clause: str) -> Mention:
    """The school with the contact that a clause after it in a list gives
    ("Ardmore Primary School, whose head is Janet Moir (j.moir@...)"),
    if it had no address: the clause's address, where a person's name
    stands just before it; else the school as it was."""
    found = EMAIL.search(clause)
    if found is None or school.email:
        return school
    words = _BRACKETS.sub(" ", clause[:found.start()]).split()
    while words and words[-1].lower().strip(":,-") in _BEFORE_ADDRESS:
        words.pop()
    # The longest run of the last words that reads as a name.
    name = next((name for n in (4, 3, 2) if len(words) >= n
                 and (name := person(" ".join(words[-n:])))), None)
    if name is None:
        return school
    return replace(school, email=found.group(), contact=school.contact or name)


# Words between a name and its address: "Janet Moir at j.moir@...".
_BEFORE_ADDRESS = frozenset({"", "at", "on", "via", "email", "e-mail"})


def _protect(text: str) -> str:
    # Commas inside brackets belong to one school, not between two.
    return _BRACKETED.sub(lambda m: m.group().replace(",", "\x00"), text)


@dataclass
class _List:
    """Where a "Schools:" list stands while its lines are read."""

    start: int  # how many schools were known when it began
    loose: bool = False  # past a blank line: only clear school names go on


def read(text: str) -> Reading:
    """Labelled fields, schools and "I'm the lead" in a sender's own text."""
    folded = fold(text)
    reading = Reading(lead_is_sender=(
        folded is None or bool(_LEAD_WORD.search(folded)))
        and bool(_I_AM_LEAD.search(text)))
    current: _List | None = None
    for paragraph in _PARAGRAPH_BREAK.split(text):
        block = _school_block(paragraph)
        if block is not None:
            # Under a "Schools:" heading a block is a school; elsewhere
            # only with another (one alone may be a signature).
            (reading.schools if current and not current.loose
             else reading.rows).append(block)
            continue
        reading.schools += _prose_schools(paragraph)
        for line in paragraph.splitlines():
            current = _read_line(line.strip(), current, reading)
        if current and len(reading.schools) > current.start:
            current.loose = True
    if len(reading.rows) >= 2:
        reading.schools += reading.rows
    return reading


def _school_block(paragraph: str) -> Mention | None:
    """A school written as a block of lines: its name alone on the first,
    then only its details, one to a line, bare or labelled ("Primary",
    "Contact: Mrs Shona Pirie (DHT)", "s.pirie@..."), one an address;
    a telephone line is passed over."""
    if "@" not in paragraph:
        return None  # no address: no block (the quick test, for most)
    lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
    if not 2 <= len(lines) <= 6:
        return None
    name = lines[0].rstrip(" :")
    if not _is_school_name(name) or "@" in name:
        return None
    school = Mention(name)
    for line in lines[1:]:
        labelled = _labelled(line)
        meaning, value = (labelled[1], labelled[2]) \
            if labelled and labelled[1] else ("", line)
        value = tidy(_BRACKETED.sub(" ", value)).strip(" .,;<>")
        who = person(value.split(",")[0]) if meaning in ("contact", "") \
            else None
        if meaning in ("email", "") and EMAIL.fullmatch(value):
            school = replace(school, email=school.email or value)
        elif meaning in ("phase", "") and _PHASE_WORDS.fullmatch(value):
            school = replace(school, phase=school.phase or phase_of(value))
        elif who:
            school = replace(school, contact=school.contact or who)
        elif not _PHONE.fullmatch(line):
            return None
    return school if school.email else None


_PHONE = re.compile(r"(?:tel|telephone|phone|mobile|mob)\b.*|[\d\s()+-]{7,}",
                    re.IGNORECASE)


def _read_line(line: str, current: _List | None,
               reading: Reading) -> _List | None:
    """Read one line into `reading`; the schools list it leaves open."""
    if not line:
        return current
    # A heading is "Schools...:", so a line without ":" is none.
    heading = _SECTION.fullmatch(line) if ":" in line else None
    if heading and not EMAIL.search(line.split(":")[0]):
        if not _FORM_MARKER.search(line):
            reading.schools += _prose_schools(
                "schools are " + heading.group("rest"))
        return _List(len(reading.schools))

    item = _ITEM.fullmatch(line)
    body = item.group("rest") if item else line
    labelled = _labelled(body)
    if labelled and current and len(reading.schools) > current.start \
            and labelled[1] in ("contact", "email", "phase", "awarded") \
            and "lead" not in labelled[3].lower():
        _add_detail(reading, labelled[1], labelled[2])
        return current
    if labelled and labelled[0]:
        value = given(labelled[2])
        if value:
            reading.fields.setdefault(labelled[0], value)
        return None
    contact = _contact_line(body) if current and \
        len(reading.schools) > current.start else None
    if contact is not None:
        # "Mrs Ann Fraser, HT - a.fraser@..." on the line under its school.
        last = reading.schools[-1]
        reading.schools[-1] = replace(last, contact=last.contact or contact[0],
                                      email=last.email or contact[1])
        return current
    if item or current:
        strict = current is None or current.loose
        school = mention(body, need_school_word=strict)
        if school:
            reading.schools.append(school)
        elif current and current.loose:
            return None
    elif "@" in body:
        row = mention(body)
        if row is not None and row.phase and row.email:
            reading.rows.append(row)
    return current


def _contact_line(line: str) -> tuple[str, str] | None:
    """The person and address of a line that gives a contact and names no
    school: a name first, with a title or a role beside it ("Mrs Ann
    Fraser, HT - a.fraser@..."), then an address. A name alone could be a
    school's ("Mary Erskine - ..."), so it is not enough."""
    found = EMAIL.search(line)
    if found is None or SCHOOL_WORD.search(line.replace(found.group(), " ")):
        return None
    parts = [tidy(p).strip(" .-\u2013\u2014")
             for p in _SPLIT.split(_BRACKETED.sub(" ; ", line))]
    name = person(parts[0]) if parts else None
    if name is None:
        return None
    words = {w.lower().strip(".,") for p in parts[1:] for w in p.split()}
    if not re.match(_TITLE, name) and words.isdisjoint(_ROLE_WORDS):
        return None
    return name, found.group()


def _add_detail(reading: Reading, meaning: str, value: str) -> None:
    """A "Contact: ..." line under a school belongs to that school."""
    last = reading.schools[-1]
    value = given(value) or ""
    found = EMAIL.search(value)
    if found and not last.email:
        last = replace(last, email=found.group())
        value = value.replace(found.group(), " ")
    if meaning == "contact" and not last.contact:
        last = replace(last, contact=person(value))
    elif meaning == "phase" and not last.phase:
        last = replace(last, phase=phase_of(value))
    elif meaning == "awarded":
        last = replace(last, awarded_cell=value)
    reading.schools[-1] = last
