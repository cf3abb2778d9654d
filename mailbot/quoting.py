"""What a writer wrote in this message, apart from quotes and signatures."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import TYPE_CHECKING

from mailparser_reply import EmailReplyParser

from mailbot.phrases import ascii_except

if TYPE_CHECKING:
    from mailbot.mail import Incoming

# The line that opens quoted history: Outlook's rule, the old and the
# forwarded separators, and Apple's forwarding line.
_SEPARATOR = re.compile(
    r"^\s*(?:_{10,}|-{3,}\s*(?:original message|forwarded message)\s*-{3,}"
    r"|begin forwarded message:)\s*$", re.IGNORECASE)
# "From: ...", "*Sent:* ..." as Outlook and Outlook on the web write them.
_FIELD = re.compile(r"^\s*\*?(?:from|sent|date|to|cc|subject)\*?\s*:",
                    re.IGNORECASE)
_FROM = re.compile(r"^\s*\*?from\*?\s*:", re.IGNORECASE)
_ON = re.compile(r"^\s*on\s", re.IGNORECASE)
_WROTE = re.compile(r"\bwrote:\s*$", re.IGNORECASE)
_QUOTE_MARKS = re.compile(r"^(?:\s*>)+ ?")

# Footers that mail servers and phones add; everything after goes too.
_FOOTER = re.compile(
    r"^\s*(?:this e-?mail (?:and|\(and) any (?:files|attachments)"
    r"|this (?:e-?mail|message) (?:is|may be) (?:confidential|privileged)"
    r"|the information (?:contained )?in this (?:e-?mail|message)"
    r"|confidentiality (?:notice|statement)|disclaimer:"
    r"|please consider the environment|think before you print"
    r"|sent from my |sent from outlook|get outlook for|sent from mail for"
    r"|sent from yahoo mail)", re.IGNORECASE)

_SIGN_OFFS = frozenset((
    "best wishes", "with best wishes", "kind regards", "kindest regards",
    "best regards", "warm regards", "warmest regards", "regards",
    "many thanks", "thanks", "thanks again", "thanks very much",
    "thank you", "thank you very much", "with thanks", "cheers",
    "yours sincerely", "yours faithfully", "sincerely", "all the best",
    "best",
))

LIBRARY_LINE = 400  # characters of a line shown to mail-parser-reply

# What must stand at the start of a line for mail-parser-reply to take it
# for the first line of a header ("On ... wrote:", a run of "From:",
# "Sent:"... fields, "-----Original Message-----"), and what an "On" line
# needs somewhere after it. Where no line above our own first header
# could be one, asking the library cannot change the answer.
# Over lines joined by "\n", like the library's own patterns: a match of
# "^\s*" that runs over blank lines means the line it ends in matches.
_LIBRARY_FIELD = re.compile(
    r"^\s*(?:[* ]*(?:from|sent|to|subject|date|cc|organization):|-{5})",
    re.IGNORECASE | re.MULTILINE)
_LIBRARY_ON = re.compile(r"^\s*on(?:\s|$)", re.IGNORECASE | re.MULTILINE)
_LIBRARY_WROTE = re.compile(r"wrote:", re.IGNORECASE)

# What a line opening history (_SEPARATOR, _ON, _FROM) and a sign-off
# (_SIGN_OFFS) can start with: cheap tests before the exact ones.
_MAY_OPEN_HISTORY = re.compile(r"\s*(?:[-_*]|on\s|from|begin)",
                               re.IGNORECASE)
_MAY_SIGN_OFF = re.compile(
    r"\s*(?:best|with|kind|warm|regards|many|thank|cheers|yours|sincerely"
    r"|all)", re.IGNORECASE)


# What _FOOTER's and _MAY_SIGN_OFF's words start with (see ascii_except,
# for a line's first character after blanks): most lines are told from
# them by a cheaper test.
_NOT_FOOTER = ascii_except("tcdpsg")
_NOT_SIGN_OFF = ascii_except("bwkrmtcysa")

# How much may follow a sign-off for it to count as the end of a message.
SIGNATURE_LINES = 8
SIGNATURE_WORDS = 10


@lru_cache(maxsize=8)
def new_text(text: str) -> str:
    """The text the writer added, without history, signature or footer.

    Classifying a message and acting on it both ask for this, of the same
    text: the answer is kept for the few messages last asked about.
    """
    new, _ = _split(_lines(text))
    new = _cut_at_footer(new)
    new = _cut_at_signature(new)
    return _join(new)


def new_text_of(mail: Incoming) -> str:
    """new_text of a message's text, kept with the message (so that it is
    worked out once, in the parsing process when that reads ahead)."""
    return mail.once("quoting.new_text", lambda: new_text(mail.text))


def quoted_text(text: str) -> str:
    """The quoted history of a message, without its '>' marks."""
    _, history = _split(_lines(text))
    return _join([_QUOTE_MARKS.sub("", line) for line in history])


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _join(lines: list[str]) -> str:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    while lines and not lines[0].strip():
        lines = lines[1:]
    return "\n".join(lines)


def _split(lines: list[str]) -> tuple[list[str], list[str]]:
    """The writer's lines and the history's, in their order."""
    found = _history_header(lines)
    if found is None:
        return _unquoted(lines), [s for s in lines if _quoted(s)]

    start, end = found
    head, rest = lines[:start], lines[end:]
    history = [s for s in head if _quoted(s)]
    own = _unquoted(head)
    if _has_words(own):
        return own, history + rest

    # Nothing above the history. If it is quoted with '>', the writer may
    # have answered below it; unquoted history is all there is.
    first = next((s for s in rest if s.strip()), "")
    if _quoted(first):
        return _unquoted(rest), history + [s for s in rest if _quoted(s)]
    return [], history + rest


def _history_header(lines: list[str]) -> tuple[int, int] | None:
    """Where the first header of unquoted history starts and ends."""
    starts = [i for i, line in enumerate(lines)
              if _MAY_OPEN_HISTORY.match(line) and _opens_history(lines, i)]
    starts += _library_headers(lines, min(starts, default=len(lines)))
    if not starts:
        return None
    start = min(starts)
    return start, _header_end(lines, start)


def _opens_history(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _quoted(line):
        return False
    if _SEPARATOR.match(line):
        return True
    following = lines[i + 1:i + 3]
    if _ON.match(line):
        # Gmail and Apple Mail: "On <date>, <name> wrote:", often wrapped.
        return bool(_WROTE.search(line)) or bool(
            following and _WROTE.search(following[0]))
    if _FROM.match(line):
        return any(_FIELD.match(s) for s in following)
    return False


def _library_headers(lines: list[str], before: int) -> list[int]:
    """Header lines that mail-parser-reply finds and we would not, if it
    could find one above line `before`."""
    if not _library_may_find(lines[:before], lines):
        return []
    # Its "On ... wrote:" rule is quadratic in the length of a line; no
    # header line is long, so long lines are cut before it sees them.
    shown = "\n".join(line[:LIBRARY_LINE] for line in lines)
    replies = EmailReplyParser(languages=["en"]).read(shown).replies
    found = []
    for reply in replies:
        header = str(reply.headers or "")
        fields = header.split("\n")
        first = fields[0].strip()
        if not first or first.startswith(">"):
            continue
        # Its Outlook rule also takes "To: all staff / Date: Friday" in a
        # body for a header; a real one names the sender.
        if _FIELD.match(first) and not any(_FROM.match(f) for f in fields):
            continue
        found += [i for i, line in enumerate(lines)
                  if line.strip() == first and not _quoted(line)][:1]
    return found


def _library_may_find(head: list[str], lines: list[str]) -> bool:
    """Whether a line of `head` could start a header the library finds.

    Where one does, the library names it by that line's text, which is
    what _library_headers looks for: so if no unquoted line of `head` can
    be such a first line, nothing the library says moves the history's
    start above the end of `head`.
    """
    # Each pattern starts after blanks at a line's start with something
    # other than ">", so no quoted line matches it.
    shown = "\n".join(head)
    if _at_a_line_start(_LIBRARY_FIELD, shown):
        return True
    return _at_a_line_start(_LIBRARY_ON, shown) and any(
        _LIBRARY_WROTE.search(s) for s in lines)


def _at_a_line_start(pattern: re.Pattern[str], text: str) -> bool:
    """Whether `pattern` ("^..." with re.MULTILINE) finds a match in
    `text`: one at its start, or one just after a line break. The second
    is searched for with "\n" for "^": a pattern that starts with one
    character is searched for by it, not tried at every position."""
    return pattern.match(text) is not None \
        or _after_a_line_break(pattern).search(text) is not None


@cache
def _after_a_line_break(pattern: re.Pattern[str]) -> re.Pattern[str]:
    return re.compile("\n" + pattern.pattern.removeprefix("^"), pattern.flags)


def _header_end(lines: list[str], start: int) -> int:
    i = start
    if _SEPARATOR.match(lines[i]):
        i += 1
    if i < len(lines) and _ON.match(lines[i]):
        return i + 1 if _WROTE.search(lines[i]) else min(i + 2, len(lines))
    while i < len(lines) and _FIELD.match(lines[i]):
        i += 1
    return i


def _quoted(line: str) -> bool:
    # As r"\s*>" would match: "\s" is what str.lstrip strips.
    return line.lstrip().startswith(">")


def _has_words(lines: list[str]) -> bool:
    return any(line.strip() for line in lines)


def _unquoted(lines: list[str]) -> list[str]:
    """Lines without '>' quotes, closing the gaps the quotes leave."""
    kept: list[str] = []
    removed = False
    for line in lines:
        if _quoted(line):
            removed = True
            continue
        if not line.strip() and removed and kept and not kept[-1].strip():
            continue
        removed = removed and not line.strip()
        kept.append(line)
    return kept


def _cut_at_footer(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if line.lstrip()[:1] not in _NOT_FOOTER and _FOOTER.match(line):
            return lines[:i]
    return lines


def _cut_at_signature(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if line.rstrip() == "--":  # "-- ", often with its space lost
            lines = lines[:i]
            break
    for i, line in enumerate(lines):
        if (line.lstrip()[:1] not in _NOT_SIGN_OFF
                and _MAY_SIGN_OFF.match(line) and _is_sign_off(line)
                and _has_words(lines[:i]) and _is_signature(lines[i + 1:])):
            return lines[:i]
    return lines


def _is_sign_off(line: str) -> bool:
    """'Best wishes', 'Many thanks,' or 'Thanks, Alan' on a line alone."""
    words, _, name = line.partition(",")
    if len(name.split()) > 3:
        return False
    words = " ".join(words.lower().rstrip(" .!").split())
    return words in _SIGN_OFFS


def _is_signature(lines: list[str]) -> bool:
    """Could these lines be a name, a job title, a school and a phone?"""
    filled = [line.strip() for line in lines if line.strip()]
    if len(filled) > SIGNATURE_LINES:
        return False
    for line in filled:
        words = len(line.split())
        if words > SIGNATURE_WORDS or line.endswith("?"):
            return False
        if words >= 5 and line.endswith((".", "!")):
            return False  # a sentence: the writer went on after "Thanks"
    return True
