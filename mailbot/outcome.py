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
