"""Scotland's 32 councils, and matching the many ways people write them."""

from __future__ import annotations

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


def find_council(text: str) -> str | None:
    """The canonical council named in `text`, or None.

    Placeholder until the alias table lands: exact canonical names only.
    """
    lowered = text.lower()
    for name in sorted(COUNCILS, key=len, reverse=True):
        if name.lower() in lowered:
            return name
    return None
