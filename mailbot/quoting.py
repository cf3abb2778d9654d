"""What a writer wrote in this message, apart from quotes and signatures."""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser

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

# How much may follow a sign-off for it to count as the end of a message.
SIGNATURE_LINES = 8
SIGNATURE_WORDS = 10


def new_text(text: str) -> str:
    """The text the writer added, without history, signature or footer."""
    new, _ = _split(_lines(text))
    new = _cut_at_footer(new)
    new = _cut_at_signature(new)
    return _join(new)


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
    if _has_words(_unquoted(head)):
        return _unquoted(head), history + rest

    # Nothing above the history. If it is quoted with '>', the writer may
    # have answered below it; unquoted history is all there is.
    first = next((s for s in rest if s.strip()), "")
    if _quoted(first):
        return _unquoted(rest), history + [s for s in rest if _quoted(s)]
    return [], history + rest


def _history_header(lines: list[str]) -> tuple[int, int] | None:
    """Where the first header of unquoted history starts and ends."""
    starts = [i for i, line in enumerate(lines) if _opens_history(lines, i)]
    starts += _library_headers(lines)
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


def _library_headers(lines: list[str]) -> list[int]:
    """Header lines that mail-parser-reply finds and we would not."""
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
        if _FOOTER.match(line):
            return lines[:i]
    return lines


def _cut_at_signature(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if line.rstrip() == "--":  # "-- ", often with its space lost
            lines = lines[:i]
            break
    for i, line in enumerate(lines):
        if (_is_sign_off(line) and _has_words(lines[:i])
                and _is_signature(lines[i + 1:])):
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
