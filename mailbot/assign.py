"""Choosing a cluster's validator from the pool in the config."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mailbot.config import Validator
from mailbot.store import VALIDATOR_ASSIGNED


def open_clusters(clusters: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """How many clusters each validator has that are still under way."""
    return Counter(
        c["validator"]["email"] for c in clusters
        if c.get("validator") and c.get("status") == VALIDATOR_ASSIGNED)


def choose_validator(pool: Sequence[Validator], council: str,
                     load: Mapping[str, int]) -> Validator | None:
    """The eligible validator with the fewest open clusters.

    A validator excluded from the council is never chosen. Ties go to the
    one listed first in the config, so the choice is the same every time.
    """
    eligible = [v for v in pool if council not in v.exclude_councils]
    if not eligible:
        return None
    return min(eligible, key=lambda v: load.get(v.email, 0))
