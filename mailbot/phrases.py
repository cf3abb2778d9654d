"""Find the phrases of rules/phrases.toml in what people write."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Letters and digits make words; anything else (spaces, punctuation, line
# breaks) only separates them, but a phrase does not run on from one
# sentence into the next.
_WORD = r"[^\W_]"
_SEP = r"(?:[^\w.!?;]|_)+"
_JOIN = r"(?:[^\w.!?;]|_)*"          # inside a hyphenated word
_GAP = rf"(?:{_SEP}{_WORD}+){{0,4}}"   # "...": up to four other words

# Words just before a match, "haven't" kept whole, for the negation test.
_WORDS_BEFORE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?;]")
NEGATION_REACH = 3      # words
NEGATION_WINDOW = 120   # characters looked back for those words


class PhraseSet:
    """A list of phrases, searched for together in one pass."""

    def __init__(self, phrases: Sequence[str],
                 negations: Sequence[str] = ()) -> None:
        self.phrases = tuple(phrases)
        alternatives = [f"(?P<p{n}>{_pattern(phrase)})"
                        for n, phrase in enumerate(self.phrases)]
        self._regex = (re.compile("|".join(alternatives), re.IGNORECASE)
                       if alternatives else None)
        self._negations = [_words(n) for n in negations if _words(n)]

    def search(self, text: str) -> str | None:
        """The first phrase in `text` that is not negated, as written."""
        if self._regex is None:
            return None
        text = text.replace("\u2019", "'")
        position = 0
        while True:
            match = self._regex.search(text, position)
            if match is None:
                return None
            if not self._negated(text, match.start()):
                return self.phrases[int(str(match.lastgroup)[1:])]
            # The negation covers the whole phrase, so that "yet to request
            # a validation visit" does not match "validation visit" after.
            position = match.end()

    def _negated(self, text: str, start: int) -> bool:
        before = text[max(0, start - NEGATION_WINDOW):start]
        before = _SENTENCE_END.split(before)[-1]
        words = [w.lower() for w in _WORDS_BEFORE.findall(before)]
        words = words[-NEGATION_REACH:]
        for negation in self._negations:
            if negation[0].startswith("n'"):
                # "n't" is a suffix: haven't, hasn't, didn't, wasn't.
                if any(w.endswith(negation[0]) for w in words):
                    return True
            elif _contains(words, negation):
                return True
        return False


def _pattern(phrase: str) -> str:
    """A regex for one phrase; hyphen and space are alike, case is not."""
    parts: list[str] = []
    for token in phrase.split():
        if token == "...":
            if parts and parts[-1] != "...":
                parts.append("...")
            continue
        pieces = re.findall(r"[^\W_]+", token)
        if pieces:
            # "self-review" is also "self review" and "selfreview".
            parts.append(_JOIN.join(re.escape(p) for p in pieces))
    while parts and parts[-1] == "...":
        parts.pop()
    if not parts:
        raise ValueError(f"phrase {phrase!r} has no words to match")

    pattern = parts[0]
    for part in parts[1:]:
        pattern += _GAP if part == "..." else _SEP + part
    return rf"(?<!{_WORD}){pattern}(?!{_WORD})"


def _words(phrase: str) -> list[str]:
    return [w.lower() for w in phrase.replace("\u2019", "'").split()]


def _contains(words: list[str], run: list[str]) -> bool:
    size = len(run)
    return any(words[i:i + size] == run for i in range(len(words) - size + 1))
