"""Find the phrases of rules/phrases.toml in what people write."""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Any

# Letters and digits make words; anything else (spaces, punctuation, line
# breaks) only separates them, but a phrase does not run on from one
# sentence into the next.
_WORD = r"[^\W_]"
_SEP = r"(?:[^\w.!?;]|_)+"
_JOIN = r"(?:[^\w.!?;]|_)*"          # inside a hyphenated word
_GAP = rf"(?:{_SEP}{_WORD}+){{0,4}}"   # "...": up to four other words
_START = rf"(?<!{_WORD})"              # a phrase starts a word

# Words just before a match, "haven't" kept whole, for the negation test.
_WORDS_BEFORE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_IS_WORD = re.compile(r"\w")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
NEGATION_REACH = 3      # words
NEGATION_WINDOW = 120   # characters looked back for those words


# At most this many distinct first words for the words-first search.
ANCHOR_WORDS = 12
# A PhraseIndex of phrases with a longer first word searches set by set:
# its regex holds a trie of first words, built a letter at a time.
INDEXED_WORD_CHARS = 100


class PhraseSet:
    """A list of phrases, searched for together in one pass.

    The phrases are one alternation behind a single word-start test.
    Text is lowered once, and the alternation is tried only where the
    first word of a phrase stands in it; text or phrases with characters
    whose case does not fold one-for-one (the Turkish dotless i, the long
    s, final sigma...) are searched without case at every position
    instead, which finds exactly the same.
    """

    def __init__(self, phrases: Sequence[str],
                 negations: Sequence[str] = ()) -> None:
        self.phrases = tuple(phrases)
        bodies = [_pattern(phrase) for phrase in self.phrases]
        self._any = _compile(bodies, re.IGNORECASE) if bodies else None
        self._each = [re.compile(b, re.IGNORECASE) for b in bodies]
        self._folded: tuple[Anchored, list[re.Pattern[str]]] | None = None
        starts = [re.findall(r"[^\W_]+", phrase.lower())[0]
                  for phrase in self.phrases if re.search(r"[^\W_]", phrase)]
        # For PhraseIndex: each phrase's pattern in lower case, and the
        # words a match of it can start with; None if a phrase does not
        # fold.
        self.lowered: tuple[list[re.Pattern[str]], list[tuple[str, ...]]] \
            | None = None
        if len(starts) == len(self.phrases) \
                and all(_folds(phrase) for phrase in self.phrases):
            self.lowered = ([re.compile(_pattern(p.lower())) for p in self.phrases],
                            [_first_words(p.lower()) for p in self.phrases])
        # Finding the first words first pays for a few of them; for many
        # (the criteria's long lists), one find each costs more than the
        # alternation searching alone, which finds the same.
        if bodies and len(set(starts)) <= ANCHOR_WORDS \
                and len(starts) == len(self.phrases) \
                and all(_folds(phrase) for phrase in self.phrases):
            lowered = [_pattern(phrase.lower()) for phrase in self.phrases]
            self._folded = (Anchored(_compile(lowered, 0), starts),
                            [re.compile(b) for b in lowered])
        self._negations = [_words(n) for n in negations if _words(n)]
        # The negations by how they are looked for, as _negated runs for
        # every match: "n't" as a suffix (of its first word only), a
        # single word in the words before, or a run of them.
        self._suffixes = tuple(n[0] for n in self._negations
                               if n[0].startswith("n'"))
        others = [n for n in self._negations if not n[0].startswith("n'")]
        self._single = frozenset(n[0] for n in others if len(n) == 1)
        self._runs = [n for n in others if len(n) > 1]

    def search(self, text: str) -> str | None:
        """The first phrase in `text` that is not negated, as written."""
        if self._any is None:
            return None
        text = text.replace("\u2019", "'")
        each = self._each
        matches = self._any.finditer(text)
        if self._folded is not None and _folds(text):
            text = text.lower()
            anchored, each = self._folded
            matches = anchored.finditer(text, text)
        # Each match starts after the one before: a negation covers the
        # whole phrase, so that "yet to request a validation visit" does
        # not match "validation visit" after.
        for match in matches:
            start = match.start()
            if not self.negated(text, start):
                # Which phrase: the first in the rules that matches here,
                # as the alternation of them all chose.
                return next(self.phrases[n] for n, phrase in enumerate(each)
                            if phrase.match(text, start))
        return None

    def negated(self, text: str, start: int) -> bool:
        """Whether one of the set's negations stands just before `start`."""
        return bool(self._negations) and self._negated(text, start)

    def _negated(self, text: str, start: int) -> bool:
        before = text[max(0, start - NEGATION_WINDOW):start]
        # Only the words after the last sentence end.
        before = before[1 + max(before.rfind("."), before.rfind("!"),
                                before.rfind("?"), before.rfind(";")):]
        words = [w.lower() for w in
                 _WORDS_BEFORE.findall(before)[-NEGATION_REACH:]]
        # "n't" is a suffix: haven't, hasn't, didn't, wasn't.
        if self._suffixes and any(w.endswith(self._suffixes) for w in words):
            return True
        return not self._single.isdisjoint(words) \
            or any(_contains(words, run) for run in self._runs)


class PhraseIndex:
    """Several PhraseSets searched together, in one pass over the words of
    a text rather than one regex search each.

    A phrase starts a word, and its first word is one a match can start
    with ("wi-fi": "wi" or "wifi"; see _first_words). Each phrase is filed
    under those words; one regex (a trie of all of them) finds where they
    stand in the text in lower case, and there only the phrases filed
    under that word are tried, in the order of their sets' rules. What
    `search` finds is what each set's own search finds: the same first
    match that is not negated, the same phrase. Text or sets whose case
    does not fold one-for-one are searched set by set.
    """

    def __init__(self, sets: Sequence[PhraseSet]) -> None:
        self.sets = tuple(sets)
        # Under each word: for each list of phrases (sets may share one,
        # as a cue list does with and without its negations), the phrases
        # filed there as one regex, their alternatives in the rules'
        # order, so that which matched first is the group that matched;
        # the sets of that list; and each alternative's phrase.
        self._filed: dict[str, list[
            tuple[re.Pattern[str], tuple[int, ...], tuple[str, ...]]]] = {}
        self._finder: re.Pattern[str] | None = None
        self._negatable = [bool(s._negations) for s in self.sets]
        if not all(phrase_set.lowered for phrase_set in self.sets):
            return
        members: dict[tuple[str, ...], list[int]] = {}
        for k, phrase_set in enumerate(self.sets):
            members.setdefault(phrase_set.phrases, []).append(k)
        under: dict[str, dict[tuple[str, ...], list[int]]] = {}
        # What may follow each word: the first pieces of the phrases' next
        # words, or None where a phrase is that word alone, or goes on
        # past a gap or from inside the word ("wi" of "wi-fi").
        follow: dict[str, set[str] | None] = {}
        for phrases, ks in members.items():
            lowered = self.sets[ks[0]].lowered
            assert lowered is not None
            for n, words in enumerate(lowered[1]):
                second = _second_word(phrases[n].lower())
                for word in words:
                    under.setdefault(word, {}).setdefault(phrases, []).append(n)
                    after = follow.setdefault(word, set())
                    if after is not None and second and words == (word,):
                        after.add(second)
                    else:
                        follow[word] = None
        if any(len(word) > INDEXED_WORD_CHARS for word in under):
            return  # searched set by set
        for word, lists in under.items():
            self._filed[word] = []
            for phrases, numbers in lists.items():
                patterns = self.sets[members[phrases][0]].lowered[0]  # type: ignore[index]
                regex = re.compile("|".join(
                    f"({patterns[n].pattern})" for n in numbers))
                self._filed[word].append(
                    (regex, tuple(members[phrases]),
                     tuple(phrases[n] for n in numbers)))
        if self._filed:
            # A word is found only where a phrase filed under it may start:
            # most of the words that start phrases are common words ("we",
            # "in"), most phrases go on with a rarer one.
            self._finder = re.compile(_START + _trie({
                word: f"(?!{_WORD})" + (
                    "" if after is None else
                    f"(?={_SEP}{_trie({w: '' for w in after})})")
                for word, after in follow.items()}))

    def search(self, text: str, wanted: Sequence[bool] | None = None
               ) -> list[str | None]:
        """[s.search(text) for s in sets], None for the sets not wanted."""
        wanted = wanted or [True] * len(self.sets)
        if self._finder is None or not _folds(text):
            return [s.search(text) if want else None
                    for s, want in zip(self.sets, wanted, strict=True)]
        text = text.replace("\u2019", "'").lower()
        for _, found in self._scan(text, [0], wanted):
            return found
        return [None] * len(self.sets)

    def search_each(self, pieces: Sequence[str]
                    ) -> Iterator[tuple[int, list[str | None]]]:
        """(n, self.search(pieces[n])) for each piece in which some set
        finds a phrase, in order, from one pass over all of them.

        The pieces are searched as one text, each after a full stop,
        which no phrase runs across and no negation looks back over: so
        a piece's finds are those of its own search."""
        joined = ". ".join(pieces)
        if self._finder is None or not _folds(joined):
            for n, piece in enumerate(pieces):
                found = self.search(piece)
                if any(phrase is not None for phrase in found):
                    yield n, found
            return
        text = joined.replace("\u2019", "'").lower()
        starts = list(itertools.accumulate(
            (len(piece) + 2 for piece in pieces[:-1]), initial=0))
        yield from self._scan(text, starts, [True] * len(self.sets))

    def _scan(self, text: str, starts: list[int], wanted: Sequence[bool]
              ) -> Iterator[tuple[int, list[str | None]]]:
        """(n, what each wanted set finds in piece n of lowered `text`) for
        each piece in which one finds a phrase, the pieces starting at
        `starts`: its phrases are tried where the finder's words stand.

        One loop over the words of all the pieces, as this runs for every
        clause of every comment: a piece's state is made afresh where its
        first word is met, and pieces with no words cost nothing."""
        assert self._finder is not None
        sets, filed, negatable = self.sets, self._filed, self._negatable
        # Where each set may match next: after its last (negated) match;
        # past the end of the text once it has found its phrase, or if it
        # is not wanted.
        closed = len(text) + 1
        fresh = [0 if want else closed for want in wanted]
        count = sum(1 for want in wanted if want)
        ends = starts[1:] + [closed]
        n, end, left = -1, 0, count
        found: list[str | None] = []
        free: list[int] = []
        for word in self._finder.finditer(text):
            start = word.start()
            if start >= end:  # the first word of another piece
                if left < count:
                    yield n, found
                n = bisect.bisect(starts, start) - 1
                end, left = ends[n], count
                found, free = [None] * len(sets), fresh.copy()
            if not left:
                continue  # every wanted set has found its phrase
            for regex, ks, alternatives in filed[word.group()]:
                match = None
                for k in ks:
                    if free[k] > start:
                        continue
                    if match is None:
                        match = regex.match(text, start)
                        if match is None:
                            break
                        phrase = alternatives[match.lastindex - 1]  # type: ignore[operator]
                    if negatable[k] and sets[k]._negated(text, start):
                        free[k] = match.end()
                    else:
                        found[k], free[k] = phrase, closed
                        left -= 1
        if left < count:
            yield n, found


def _first_words(phrase: str) -> tuple[str, ...]:
    """The whole words (runs of letters and digits) a match of the phrase
    can start with. Its first word with words in it is pieces joined by
    nothing or by punctuation ("wi-fi", "don't"), and what follows is not
    a letter, so a match starts with the first piece, the first two run
    together, and so on: "wi" or "wifi"."""
    for token in phrase.split():
        pieces = re.findall(r"[^\W_]+", token)
        if token != "..." and pieces:
            return tuple(itertools.accumulate(pieces))
    return ()


def _second_word(phrase: str) -> str:
    """The first piece of the phrase's second word, if it follows the first
    with no gap ("..."): "place" of "in place"; else ''."""
    tokens = [t for t in phrase.split() if t == "..." or re.search(r"[^\W_]", t)]
    while tokens and tokens[0] == "...":
        tokens.pop(0)
    if len(tokens) < 2 or tokens[1] == "...":
        return ""
    return re.findall(r"[^\W_]+", tokens[1])[0]


def _trie(words: Mapping[str, str]) -> str:
    """A regex matching exactly the keys of `words`, each followed by the
    pattern it maps to, shaped as a trie so that each place in a text costs
    a few steps, not one per word."""
    root: dict[str, Any] = {}
    for word, after in words.items():
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = after

    def shape(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + shape(child)
                    for char, child in sorted(node.items()) if char]
        if "" in node:
            branches.append(node[""])
        if len(branches) == 1:
            return branches[0]
        return f"(?:{'|'.join(branches)})"

    return shape(root)


class Anchored:
    """A regex every match of which begins with one of a few words, and
    a quicker way to search for it: the words are found first (str.find
    on the text in lower case, from `fold`) and the regex is tried only
    where one stands. Without folded text, or with a word whose case does
    not fold one-for-one, the regex searches alone. Either way the matches
    are those of regex.search and .finditer.
    """

    def __init__(self, regex: re.Pattern[str], starts: Sequence[str]) -> None:
        self.regex = regex
        self.starts = tuple(dict.fromkeys(starts))
        # A final sigma in a word matches a plain one in the text without
        # case, which str.find would miss (guards a bug found so).
        self._finds = all(_folds(word) for word in self.starts)

    def search(self, text: str, folded: str | None) -> re.Match[str] | None:
        """regex.search(text); `folded` is fold(text)."""
        return next(self.finditer(text, folded), None)

    def finditer(self, text: str, folded: str | None
                 ) -> Iterator[re.Match[str]]:
        """regex.finditer(text), for a regex that matches no empty text;
        `folded` is fold(text)."""
        if folded is None or not self._finds:
            yield from self.regex.finditer(text)
            return
        # Where each word next stands, from `position` on (-1: nowhere).
        ahead = [folded.find(word) for word in self.starts]
        while True:
            waiting = [at for at in ahead if at >= 0]
            if not waiting:
                return
            start = min(waiting)
            match = self.regex.match(text, start)
            position = start + 1
            if match is not None:
                yield match
                position = max(match.end(), position)
            ahead = [folded.find(word, position) if 0 <= at < position else at
                     for word, at in zip(self.starts, ahead, strict=True)]


def _compile(bodies: list[str], flags: int) -> re.Pattern[str]:
    return re.compile(f"{_START}(?:{'|'.join(bodies)})", flags)


def _pattern(phrase: str) -> str:
    """A regex for one phrase; hyphen and space are alike. The word-start
    test before it is left to the caller."""
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
    return rf"{pattern}(?!{_WORD})"


def ascii_except(letters: str) -> frozenset[str]:
    """The ASCII characters other than `letters`, in either case: a text
    that starts with one of them matches no pattern that, without case,
    starts with one of `letters` (among ASCII characters a letter matches
    only its other case). A cheap test before such a pattern."""
    return frozenset(map(chr, range(128))) - frozenset(
        letters.lower() + letters.upper())


def fold(text: str) -> str | None:
    """`text` in lower case, where searching that for lower-case words is
    the same as searching `text` without case; else None. A cheap test
    that a case-insensitive pattern cannot match starts here."""
    return text.lower() if _folds(text) else None


def _folds(text: str) -> bool:
    """Whether lowering `text` and matching with case is the same as
    matching `text` without case: true of ASCII, and of most letters."""
    return text.isascii() or all(
        _folds_simply(char) for char in set(_NOT_ASCII.findall(text)))


@cache
def _folds_simply(char: str) -> bool:
    """One character lowers to one, whatever surrounds it (not so for
    final sigma), stays a letter or not, matches its lower case without
    case, and shares no case-insensitive match with another lower case
    letter (the dotless i, the long s and their like do)."""
    low = char.lower()
    return (len(low) == 1 and char != "\u03a3"
            and low.lower() == low and low.upper().lower() == low
            and bool(_IS_WORD.match(char)) == bool(_IS_WORD.match(low))
            and re.fullmatch(re.escape(low), char, re.IGNORECASE) is not None)


def _words(phrase: str) -> list[str]:
    return [w.lower() for w in phrase.replace("\u2019", "'").split()]


def _contains(words: list[str], run: list[str]) -> bool:
    size = len(run)
    return any(words[i:i + size] == run for i in range(len(words) - size + 1))
