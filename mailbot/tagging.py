"""A school's comments, tagged by the criteria they speak of.

Each sentence (each side of a "but") that names a criterion, by the
phrases in rules/criteria.toml, is a strength or a weakness of the school
in it: by its own cues ("a real strength", "we struggle with"), a cue
turned round by a negation ("not confident"), or the heading it stands
under ("Areas for development:"). The matrix of supports reads these as
the school's standing where its results do not settle it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from mailbot.errors import ConfigError
from mailbot.phrases import PhraseIndex, PhraseSet, fold
from mailbot.rules import read_rules_file
from mailbot.selfreview import MAX_TEXT_CHARS, Criterion, tidy

EVIDENCE_CHARS = 300

Kind = Literal["strength", "weakness"]
STRENGTH: Kind = "strength"
WEAKNESS: Kind = "weakness"
RULES_FILE = Path(__file__).resolve().parents[1] / "rules" / "criteria.toml"
# Bounds against hostile text, far above any real comment: clauses (each
# side of a "but") read, and tags kept, per comment.
MAX_CLAUSES = 2_000
MAX_TAGS = 200


@dataclass(frozen=True)
class Tag:
    """A criterion a comment speaks of, whether as a strength or a
    weakness, the words that said so and the phrase that named it."""

    criterion: Criterion
    kind: Kind
    evidence: str
    phrase: str = ""


@dataclass(frozen=True)
class CriteriaRules:
    """rules/criteria.toml: phrases by criterion, cues and headings by
    kind, and the negations that turn a cue around."""

    phrases: Mapping[Criterion, tuple[str, ...]]
    cues: Mapping[Kind, tuple[str, ...]]
    headings: Mapping[Kind, tuple[str, ...]]
    negations: tuple[str, ...]


def load_criteria(path: Path = RULES_FILE) -> CriteriaRules:
    """Read and check rules/criteria.toml, naming the key of a mistake."""
    raw = read_rules_file(path)

    known = {"negations", *Criterion, STRENGTH, WEAKNESS}
    for key in raw:
        if key not in known:
            raise ConfigError(path, key, "unknown section or key (known: "
                              f"{', '.join(sorted(known))})")
    phrases = {c: _phrase_list(path, raw, str(c), "phrases") for c in Criterion}
    cues = {k: _phrase_list(path, raw, k, "cues") for k in (STRENGTH, WEAKNESS)}
    headings = {k: _phrase_list(path, raw, k, "headings")
                for k in (STRENGTH, WEAKNESS)}
    negations = raw.get("negations")
    if not isinstance(negations, list) \
            or not all(isinstance(n, str) and n.strip() for n in negations):
        raise ConfigError(path, "negations", "must be a list of words in quotes")
    return CriteriaRules(phrases, cues, headings, tuple(negations))


def _phrase_list(path: Path, raw: dict[str, Any], section: str,
                 key: str) -> tuple[str, ...]:
    table = raw.get(section)
    if not isinstance(table, dict):
        raise ConfigError(path, section, "missing table")
    allowed = {"phrases"} if section in set(Criterion) else {"cues", "headings"}
    for name in table:
        if name not in allowed:
            raise ConfigError(path, f"{section}.{name}", "unknown key (known: "
                              f"{', '.join(sorted(allowed))})")
    value = table.get(key)
    if not isinstance(value, list) or not value \
            or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, f"{section}.{key}",
                          "must be a list of phrases in quotes")
    for n, phrase in enumerate(value):
        if not any(ch.isalnum() for ch in phrase):
            raise ConfigError(path, f"{section}.{key}[{n}]",
                              f"{phrase!r} has no words to match")
    return tuple(value)


# A line that starts an item of a list.
_BULLET = re.compile(r"(?:[-*\u2022\u00b7>]|\d{1,2}[.)]|[a-z][.)])\s+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;])\s+")
# Words that turn a sentence from one side to the other; each side is
# tagged on its own ("strong in coding but we need more devices").
_CONTRAST = re.compile(r"\b(?:but|however|although|though|whereas|whilst"
                       r"|while|except)\b", re.IGNORECASE)
_CONTRAST_LOWERED = re.compile(_CONTRAST.pattern)
# Its words, looked for before splitting: most sentences hold none.
_CONTRAST_WORDS = ("but", "however", "though", "whereas", "whilst", "while",
                   "except")
_HEADING_PARTS = re.compile(r"\s*(?:/|&|,|\band\b|\bor\b)\s*")
_HEADING_FILLER = frozenset({"our", "possible", "key", "main", "current",
                             "the", "some", "school", "schools", "school's",
                             "potential", "identified", "perceived", "any",
                             "particular", "my"})
# What may end a heading that is a sentence's start: "Our main areas for
# development are:", "Strengths include:".
_HEADING_VERBS = frozenset({"are", "is", "include", "includes", "would",
                            "be", "were"})
_HEADING_WORDS = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# What may stand before a heading's first word: fillers and the words that
# join headings.
_BEFORE_HEADING = _HEADING_FILLER | {"and", "or"}


def _either(words: set[str] | frozenset[str]) -> str:
    """A regex for any one of `words` as a whole word of _HEADING_WORDS:
    no letter or digit follows it, nor, if it has no apostrophe, an
    apostrophe with one after it ("school" is not the start of
    "school's"). Never matches if there are none."""
    return "(?:" + ("|".join(
        re.escape(word) + (r"(?![^\W_])" if "'" in word
                           else r"(?![^\W_]|'[^\W_])")
        for word in sorted(words, key=len, reverse=True)) or "(?!)") + ")"


def _heading_key(text: str) -> str:
    words = _HEADING_WORDS.findall(text.lower().replace("\u2019", "'"))
    while words and words[0] in _HEADING_FILLER:
        words.pop(0)
    while words and words[-1] in _HEADING_VERBS:
        words.pop()
    return " ".join(words)


class Tagger:
    """Tags comments by criterion with the phrases of one CriteriaRules."""

    def __init__(self, rules: CriteriaRules) -> None:
        # A criterion is named whether or not a negation stands before it
        # ("no digital strategy" is about leadership); a cue is turned
        # around by one ("we do not struggle with wifi").
        self.criteria = [(c, PhraseSet(rules.phrases[c])) for c in Criterion]
        self.cues = {k: (PhraseSet(rules.cues[k], rules.negations),
                         PhraseSet(rules.cues[k]))
                     for k in (STRENGTH, WEAKNESS)}
        # All of them searched in one pass: the criteria first, then each
        # kind's cues, affirmed and plain.
        self.index = PhraseIndex(
            [phrases for _, phrases in self.criteria]
            + [s for pair in self.cues.values() for s in pair])
        self.headings = {_heading_key(h): k
                         for k in (STRENGTH, WEAKNESS)
                         for h in rules.headings[k]}
        # The words a heading starts with, once its filler words are gone:
        # a line whose label starts otherwise is no heading (most lines).
        # One match tells, past any fillers and the words that join
        # headings ("and", "or"): a word as _HEADING_WORDS finds it.
        starts = {key.split()[0] for key in self.headings if key}
        self._may_head_match = re.compile(
            rf"[\W_]*(?:{_either(_BEFORE_HEADING)}[\W_]*)*{_either(starts)}"
        ).match

    def tag(self, text: str) -> list[Tag]:
        """The criteria each sentence of `text` speaks of, with their kind.

        A sentence's kind comes from its own cues, else from the section
        it stands in ("Strengths:" down to a blank line, or the next
        heading); a sentence with neither is not tagged. A cue after a
        negation counts for the other kind ("not confident" is a
        weakness, "no problems with" a strength); a sentence with cues of
        both kinds is a weakness, the side a validator must not miss.
        """
        clauses = list(itertools.islice(
            ((section, clause) for section, sentence in self._sentences(text)
             for clause in _clauses(sentence)), MAX_CLAUSES))
        count = len(self.criteria)
        tags: list[Tag] = []
        for n, found in self.index.search_each([c for _, c in clauses]):
            section, clause = clauses[n]
            # Most clauses that name a criterion have no kind: that is
            # the cheaper test, made first.
            kind = self._kind(found[count:]) or section
            if kind is None:
                continue
            named = [(c, phrase) for (c, _), phrase in zip(
                self.criteria, found[:count], strict=True) if phrase is not None]
            if not named:
                continue
            evidence = tidy(clause).strip(" ,;:-")[:EVIDENCE_CHARS]
            tags.extend(Tag(c, kind, evidence, phrase) for c, phrase in named)
            if len(tags) >= MAX_TAGS:
                break
        return tags[:MAX_TAGS]

    @staticmethod
    def _kind(cues: list[str | None]) -> Kind | None:
        """The kind a clause's cues say, from what the cue sets found in
        it: each kind's affirmed cues, then its plain ones, strengths
        first (as in self.cues). A plain cue found where no affirmed one
        is was negated: it says the other kind."""
        strong, strong_plain, weak, weak_plain = cues
        if weak is not None or (strong is None and strong_plain is not None):
            return WEAKNESS
        if strong is not None or weak_plain is not None:
            return STRENGTH
        return None

    def _heading(self, line: str) -> tuple[Kind | None, str]:
        """The kind a heading line names ("Strengths:", "Areas for
        development -") and the text after it on the line."""
        label, rest, head = line, "", line[:80]
        for mark in (":", " - ", " \u2013 "):
            if mark in head:
                label, _, rest = line.partition(mark)
                break
        if len(label) > 80 or not self._may_head(label):
            return None, line
        kinds = {self.headings.get(_heading_key(part))
                 for part in _HEADING_PARTS.split(label) if part.strip("*#_ ")}
        if len(kinds) != 1 or None in kinds:
            return None, line
        return kinds.pop(), rest.strip()

    def _may_head(self, label: str) -> bool:
        """Whether the label's first word, past fillers and the words that
        join headings ("and", "or"), starts a heading: the first part of a
        heading label must be one, and only fillers and joins come before
        its first word."""
        return self._may_head_match(
            label.lower().replace("\u2019", "'")) is not None

    def _sentences(self, text: str) -> Iterator[tuple[Kind | None, str]]:
        section: Kind | None = None
        seen = closing = False
        paragraph: list[str] = []
        for line in text[:MAX_TEXT_CHARS].splitlines():
            line = tidy(line)
            if not line:
                yield from _split(section, paragraph)
                paragraph = []
                closing = seen
                continue
            bullet = _BULLET.match(line)
            if closing and not bullet:
                section = None
            closing = False
            kind, rest = self._heading(line)
            if kind is not None:
                yield from _split(section, paragraph)
                paragraph, section, seen = [], kind, False
                line = rest
                if not line:
                    continue
                bullet = _BULLET.match(line)
            if bullet:
                yield from _split(section, paragraph)
                paragraph = [line[bullet.end():]]
            else:
                paragraph.append(line)
            seen = section is not None
        yield from _split(section, paragraph)


def _clauses(sentence: str) -> list[str]:
    """The sentence split at its contrast words: _CONTRAST.split, quicker
    where the sentence, lowered, holds none of them (a lowered text is
    searched with case only where that finds what searching without case
    would: see phrases.fold)."""
    lowered = fold(sentence)
    if lowered is None:
        return _CONTRAST.split(sentence)
    if not any(w in lowered for w in _CONTRAST_WORDS):
        return [sentence]
    # Where the contrast words stand in the lowered sentence, they stand in
    # the sentence, and searching with case is the quicker.
    clauses, start = [], 0
    for match in _CONTRAST_LOWERED.finditer(lowered):
        clauses.append(sentence[start:match.start()])
        start = match.end()
    clauses.append(sentence[start:])
    return clauses


def _split(section: Kind | None, lines: list[str]
           ) -> list[tuple[Kind | None, str]]:
    """The sentences of a paragraph, in its section; none without lines
    (every blank line ends a paragraph, most of them an empty one)."""
    if not lines:
        return []
    return [(section, sentence)
            for sentence in _SENTENCE_BREAK.split(" ".join(lines))
            if sentence.strip()]


@cache
def default_tagger() -> Tagger:
    """A Tagger of the rules/criteria.toml shipped with mailbot."""
    return Tagger(load_criteria())


def tag_comment(text: str, tagger: Tagger | None = None) -> list[Tag]:
    """Tags for each criterion `text` names as a strength or a weakness,
    sentence by sentence, in order."""
    return (tagger or default_tagger()).tag(text)
