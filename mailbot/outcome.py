"""What became of one message: the verdict the pipeline logs and records."""

from __future__ import annotations

from dataclasses import dataclass

HANDLED = "handled"      # understood and acted on; moved to the handled folder
IGNORED = "ignored"      # deliberately not answered (a robot, a duplicate)
SET_ASIDE = "set_aside"  # kept for a person; moved to the set-aside folder


@dataclass(frozen=True)
class Outcome:
    outcome: str
    kind: str
    summary: str
    cluster_id: int | None = None
    school_id: int | None = None
    # The check that held it back for a person, if one did (HOLDS): staff
    # who replay it lift that check for it, and that check alone.
    hold: str = ""


# Checks that set a message aside until staff replay it.
# Nominations in a day from one sender, or naming the same people
# (rules: nomination.per_sender_per_day):
NOMINATIONS_PER_DAY = "nominations-per-day"
# A school's contact named who is already the contact of another school:
CONTACT_TAKEN = "contact-taken"
HOLDS = frozenset({NOMINATIONS_PER_DAY, CONTACT_TAKEN})
