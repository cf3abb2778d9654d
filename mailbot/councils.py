"""Scotland's 32 councils, and matching the many ways people write them."""

from __future__ import annotations

import re
from functools import cache

# The canonical names, as mailbot records and exports them. The config's
# [councils] table is keyed by exactly these names.
COUNCILS: tuple[str, ...] = (
    "Aberdeen City",
    "Aberdeenshire",
    "Angus",
    "Argyll and Bute",
    "City of Edinburgh",
    "Clackmannanshire",
    "Dumfries and Galloway",
    "Dundee City",
    "East Ayrshire",
    "East Dunbartonshire",
    "East Lothian",
    "East Renfrewshire",
    "Falkirk",
    "Fife",
    "Glasgow City",
    "Highland",
    "Inverclyde",
    "Midlothian",
    "Moray",
    "Na h-Eileanan Siar",
    "North Ayrshire",
    "North Lanarkshire",
    "Orkney Islands",
    "Perth and Kinross",
    "Renfrewshire",
    "Scottish Borders",
    "Shetland Islands",
    "South Ayrshire",
    "South Lanarkshire",
    "Stirling",
    "West Dunbartonshire",
    "West Lothian",
)

# Other ways of writing each council, beyond its canonical name. They are
# compared after _normalise, so "&" and hyphens need no variants here.
_ALIASES: dict[str, tuple[str, ...]] = {
    "Aberdeen City": ("aberdeen", "city of aberdeen"),
    "Argyll and Bute": ("argyll",),
    "City of Edinburgh": ("edinburgh", "edinburgh city"),
    "Clackmannanshire": ("clacks",),
    "Dumfries and Galloway": ("dumfries", "galloway"),
    "Dundee City": ("dundee", "city of dundee"),
    "East Dunbartonshire": ("east dunbarton",),
    "West Dunbartonshire": ("west dunbarton",),
    "Glasgow City": ("glasgow", "city of glasgow"),
    "Highland": ("highlands",),
    "Na h-Eileanan Siar": (
        "comhairle nan eilean siar", "eilean siar", "western isles",
        "outer hebrides",
    ),
    "Orkney Islands": ("orkney",),
    "Perth and Kinross": ("perth", "kinross"),
    "Scottish Borders": ("borders",),
    "Shetland Islands": ("shetland", "zetland"),
}

# Names that could be one of several councils: a match on these alone
# means "we cannot tell", not a guess.
_AMBIGUOUS = ("dunbartonshire", "lanarkshire", "ayrshire", "lothian")

# Councils whose names are also people's first names: in running prose
# ("My colleague Angus and I") they name a council only after a word such
# as "in" ("schools in Angus") or before a trailer ("Angus Council").
_GIVEN_NAMES = {"angus", "moray"}
_PLACE_WORDS = {"in", "of", "for", "across", "within", "from", "throughout"}

# Words that may follow a council's name and still mean the council, as in
# "Fife Council" or "Orkney Islands Council"; used by mentioned_council.
_TRAILERS = {"council", "city", "islands", "area", "region", "local"}


def _normalise(text: str) -> str:
    text = text.lower().replace("&", " and ")
    text = re.sub(r"[-\u2010-\u2014]", " ", text)
    return " ".join(text.split())


@cache
def _table() -> dict[str, str | None]:
    table: dict[str, str | None] = {}
    for name in COUNCILS:
        table[_normalise(name)] = name
        for alias in _ALIASES.get(name, ()):
            table[_normalise(alias)] = name
    for alias in _AMBIGUOUS:
        table[alias] = None
    return table


@cache
def _pattern() -> re.Pattern[str]:
    # Longest first, so "aberdeenshire" and "east renfrewshire" are tried
    # before "aberdeen" and "renfrewshire" at the same position.
    aliases = sorted(_table(), key=len, reverse=True)
    words = (r"[\s\-\u2010-\u2014]+".join(
        "(?:and|&)" if w == "and" else re.escape(w) for w in a.split())
        for a in aliases)
    alternatives = "|".join(words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _matches(text: str) -> list[re.Match[str]]:
    return list(_pattern().finditer(text))


def find_council(text: str) -> str | None:
    """The first council named in `text`, or None.

    Whole words only, ignoring case; a bare "Dunbartonshire" or
    "Lanarkshire" names no council in particular and is passed over.
    """
    for match in _matches(text):
        council = _table()[_normalise(match.group())]
        if council:
            return council
    return None


def mentioned_council(text: str) -> str | None:
    """Like find_council, but strict enough for running prose.

    The name must be capitalised and must not run on into another
    capitalised word, so "Angus MacLeod", "Stirling High School" and "the
    field borders the school" name no council; "Fife Council" still does.
    """
    given: str | None = None
    for match in _matches(text):
        if not match.group()[0].isupper():
            continue
        following = re.match(r"\s+(\w+)", text[match.end():])
        if following and following.group(1)[0].isupper() \
                and following.group(1).lower() not in _TRAILERS:
            continue
        if _normalise(match.group()) in _GIVEN_NAMES:
            before = re.search(r"(\w+)\W*$", text[:match.start()])
            trailer = following and following.group(1).lower() in _TRAILERS
            if not trailer and not (before and before.group(1).lower()
                                    in _PLACE_WORDS):
                continue
            if not trailer:
                # "copied in Angus", "a note from Moray": still perhaps a
                # person; any other council the text names comes first.
                given = given or _table()[_normalise(match.group())]
                continue
        council = _table()[_normalise(match.group())]
        if council:
            return council
    return given


def canonical_council(value: str) -> str | None:
    """The council that a cell or field holds, or None if it holds more.

    "The Highland Council", "Fife Council" and "Argyll & Bute" are
    councils; "Fife, near Kirkcaldy" is not exactly one.
    """
    text = _normalise(value.strip(" \t.,;:()[]\"'"))
    text = re.sub(r"^the\s+", "", text)
    text = re.sub(r"\s+(?:council|local authority|area|region)$", "", text)
    return _table().get(text)
