"""Recognising Scotland's 32 councils however people write them."""

import pytest

from mailbot.councils import (
    COUNCILS,
    canonical_council,
    find_council,
    mentioned_council,
)


@pytest.mark.parametrize(("text", "council"), [
    ("Fife Council", "Fife"),
    ("The Highland Council", "Highland"),
    ("Highland Council", "Highland"),
    ("Argyll & Bute", "Argyll and Bute"),
    ("Argyll and Bute Council", "Argyll and Bute"),
    ("Edinburgh", "City of Edinburgh"),
    ("City of Edinburgh Council", "City of Edinburgh"),
    ("Edinburgh City", "City of Edinburgh"),
    ("Glasgow", "Glasgow City"),
    ("Comhairle nan Eilean Siar", "Na h-Eileanan Siar"),
    ("Western Isles", "Na h-Eileanan Siar"),
    ("Eilean Siar", "Na h-Eileanan Siar"),
    ("Na h-Eileanan Siar", "Na h-Eileanan Siar"),
    ("Dumfries & Galloway", "Dumfries and Galloway"),
    ("Perth & Kinross", "Perth and Kinross"),
    ("Perth-and-Kinross", "Perth and Kinross"),
    ("Borders", "Scottish Borders"),
    ("Orkney", "Orkney Islands"),
    ("Shetland", "Shetland Islands"),
    ("Aberdeen", "Aberdeen City"),
    ("Aberdeenshire", "Aberdeenshire"),
    ("Dundee", "Dundee City"),
    ("East Dunbartonshire", "East Dunbartonshire"),
    ("West Dunbartonshire", "West Dunbartonshire"),
    ("North Lanarkshire", "North Lanarkshire"),
    ("South Lanarkshire", "South Lanarkshire"),
    ("Renfrewshire", "Renfrewshire"),
    ("East Renfrewshire", "East Renfrewshire"),
    ("FIFE", "Fife"),
    ("falkirk council", "Falkirk"),
])
def test_find_council_knows_common_spellings(text: str, council: str) -> None:
    assert find_council(text) == council
    assert find_council(f"We are a cluster in {text}, as it happens.") \
        == council


@pytest.mark.parametrize("name", COUNCILS)
def test_every_canonical_name_is_found_and_canonical(name: str) -> None:
    assert find_council(name) == name
    assert canonical_council(name) == name
    assert canonical_council(f"{name} Council") == name


@pytest.mark.parametrize("text", [
    "Dunbartonshire", "Lanarkshire", "Ayrshire", "Lothian",
    "Fifer", "Highlander", "Perthshire", "nothing here", "",
])
def test_ambiguous_or_partial_words_name_no_council(text: str) -> None:
    assert find_council(text) is None


def test_aberdeenshire_wins_over_aberdeen() -> None:
    assert find_council("schools across Aberdeenshire") == "Aberdeenshire"
    assert find_council("Aberdeen City Council") == "Aberdeen City"


def test_the_first_council_named_is_returned() -> None:
    assert find_council("Fife, not far from Edinburgh") == "Fife"


def test_a_bare_ambiguous_name_gives_way_to_a_definite_one() -> None:
    assert find_council("Dunbartonshire, I mean West Dunbartonshire") \
        == "West Dunbartonshire"


@pytest.mark.parametrize(("value", "council"), [
    ("The Highland Council", "Highland"),
    ("Fife.", "Fife"),
    ("  Argyll & Bute  ", "Argyll and Bute"),
    ("Comhairle nan Eilean Siar", "Na h-Eileanan Siar"),
    ("City of Edinburgh Council", "City of Edinburgh"),
    ("Fife, near Kirkcaldy", None),
    ("Dunbartonshire", None),
    ("Kirkcaldy", None),
    ("", None),
])
def test_canonical_council_wants_exactly_one(value: str,
                                             council: str | None) -> None:
    assert canonical_council(value) == council


@pytest.mark.parametrize(("text", "council"), [
    ("Our schools are all in Angus.", "Angus"),
    ("We are part of Fife Council's ASG", "Fife"),
    ("Angus MacLeod is our head teacher", None),
    ("Stirling High School is one of ours", None),
    ("the playing field borders the school", None),
    ("We are in Orkney Islands Council", "Orkney Islands"),
    # A council that is also a first name (guards a bug: a colleague
    # named Angus made a Fife cluster Angus's, and told Angus of it).
    ("My colleague Angus and I have put this together", None),
    ("Moray and I lead the cluster", None),
    ("Angus Council schools", "Angus"),
    ("schools across Moray", "Moray"),
    # After a place word, still perhaps a person: another council wins.
    ("I have copied in Angus, our depute; our schools are in Fife", "Fife"),
    ("A note from Moray and me: all our schools are in Fife", "Fife"),
])
def test_mentioned_council_is_strict_in_prose(text: str,
                                              council: str | None) -> None:
    assert mentioned_council(text) == council
