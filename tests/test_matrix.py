"""The matrix of supports: the rules, and the optimiser against brute force."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from mailbot.matrix import (
    CRITERIA,
    Proposal,
    School,
    Settings,
    Standing,
    Support,
    Tie,
    propose,
    propose_all,
    to_hundredths,
)

LV, CURR, CULT, PD, RES = CRITERIA


def school(id: str, council: str = "Fife", cluster: str | None = "K1",
           overrides: dict[str, Standing] | None = None,
           **by_initial: float) -> School:
    """A school whose scores are given by criterion initials: lv, curr,
    cult, pd, res; the rest default to 80 (a strength)."""
    names = dict(zip(("lv", "curr", "cult", "pd", "res"), CRITERIA,
                     strict=True))
    scores = {name: by_initial.get(key, 80) for key, name in names.items()}
    return School(id, council, scores, cluster, overrides or {})


def digital(id: str, council: str = "Fife", **by_initial: float) -> School:
    return school(id, council, None, None, **by_initial)


def pairs(proposal: Proposal, criterion: str | None = None) -> set[tuple]:
    return {(t.mentor, t.mentee) for t in proposal.ties
            if criterion is None or t.criterion == criterion}


# -------------------------------------------------------------- the rules


def test_scores_are_whole_hundredths() -> None:
    assert to_hundredths(70) == 7000
    assert to_hundredths(200 / 3) == 6667
    assert to_hundredths(69.995) == 7000  # half to even on the decimal
    for bad in (-1, 100.5, float("nan"), True, "70"):
        with pytest.raises(ValueError):
            to_hundredths(bad)  # type: ignore[arg-type]


def test_standing_by_threshold_and_missing_score() -> None:
    s = School("A", "Fife", {LV: 70, CURR: 69.99}, "K1")
    p = propose([s], [], Settings())
    assert p.standings["A"][LV] is Standing.STRENGTH
    assert p.standings["A"][CURR] is Standing.GAP
    assert p.standings["A"][CULT] is Standing.GAP  # not reviewed: 0
    assert propose([s], [], Settings(strength_threshold=60)).standings[
        "A"][CURR] is Standing.STRENGTH


def test_a_school_never_mentors_itself() -> None:
    # A is the only school strong in LV and weak elsewhere; B the reverse.
    a = school("A", curr=10, cult=10, pd=10, res=10)
    b = school("B", lv=10)
    p = propose([a, b], [])
    assert pairs(p) == {("A", "B"), ("B", "A")}
    assert {t.criterion for t in p.ties if t.mentor == "A"} == {LV}
    assert all(t.mentor != t.mentee for t in p.ties)
    # the same id inside and outside is refused, not matched to itself
    with pytest.raises(ValueError, match="both"):
        propose([a, b], [digital("A")])


def test_capacity_per_mentor_per_criterion() -> None:
    mentor = school("M")
    weak = [school(f"W{i}", lv=20 + i) for i in range(5)]
    p = propose([mentor, *weak], [], Settings(max_mentees=2))
    assert len(p.ties) == 2
    # the difference sum prefers the weakest two
    assert pairs(p) == {("M", "W0"), ("M", "W1")}
    assert [(f.school, f.criterion) for f in p.fallbacks] == [
        ("W4", LV), ("W3", LV), ("W2", LV)]
    assert propose([mentor, *weak], [], Settings(max_mentees=0)).ties == ()


def test_in_cluster_mentor_preferred_to_a_stronger_digital_school() -> None:
    a = school("A", lv=75)
    b = school("B", lv=20)
    d = digital("D", lv=100)
    p = propose([a, b], [d], Settings(max_mentees=1))
    assert pairs(p) == {("A", "B")}
    assert p.ties[0].in_cluster and p.ties[0].difference == 5500
    # once the cluster's mentor is full, the Digital School takes the next
    c = school("C", lv=30)
    p = propose([a, b, c], [d], Settings(max_mentees=1))
    assert pairs(p) == {("A", "B"), ("D", "C")}
    assert p.objective.in_cluster == 1 and p.objective.covered == 2


def test_coverage_comes_before_in_cluster_mentors() -> None:
    # A (in cluster, one place) could take B or C; the Digital School D is
    # in B's council only. Covering both beats giving A the better match.
    a = school("A", "Fife", lv=90)
    b = school("B", "Fife", lv=10)
    c = school("C", "Falkirk", lv=60)
    d = digital("D", "Fife", lv=100)
    p = propose([a, b, c], [d], Settings(max_mentees=1))
    assert pairs(p) == {("A", "C"), ("D", "B")}


def test_digital_schools_of_other_councils_do_not_mentor() -> None:
    b = school("B", lv=20)
    p = propose([b], [digital("D", "Angus", lv=100)])
    assert p.ties == ()
    assert [f.support for f in p.fallbacks] == [Support.VALIDATOR]


def test_a_mentor_must_be_a_strength() -> None:
    p = propose([school("A", lv=65), school("B", lv=20)], [])
    assert p.ties == ()
    assert {f.school for f in p.fallbacks} == {"A", "B"}


def test_fallback_order_validator_council_education_scotland() -> None:
    # ten uncovered gaps: nobody is strong in LV
    schools = [school(f"S{i}", lv=60 - 5 * i) for i in range(10)]
    p = propose(schools, [], Settings(validator_gaps=3, council_gaps=4))
    assert [(f.school, f.support) for f in p.fallbacks] == [
        ("S0", Support.VALIDATOR), ("S1", Support.VALIDATOR),
        ("S2", Support.VALIDATOR), ("S3", Support.COUNCIL),
        ("S4", Support.COUNCIL), ("S5", Support.COUNCIL),
        ("S6", Support.COUNCIL), ("S7", Support.EDUCATION_SCOTLAND),
        ("S8", Support.EDUCATION_SCOTLAND),
        ("S9", Support.EDUCATION_SCOTLAND)]
    assert p.fallbacks[0].shortfall == 1000
    # equal shortfalls: criterion order, then school id
    s = [school("B", lv=50, res=50), school("A", lv=50, res=50)]
    p = propose(s, [], Settings(validator_gaps=1, council_gaps=None))
    assert [(f.school, f.criterion, f.support) for f in p.fallbacks] == [
        ("A", LV, Support.VALIDATOR), ("B", LV, Support.COUNCIL),
        ("A", RES, Support.COUNCIL), ("B", RES, Support.COUNCIL)]
    p = propose(s, [], Settings(validator_gaps=0, council_gaps=0))
    assert {f.support for f in p.fallbacks} == {Support.EDUCATION_SCOTLAND}


def test_overrides_replace_the_threshold() -> None:
    # A scores 90 in LV but its comments show a gap; B scores 50 but is
    # marked a strength.
    a = school("A", lv=90, overrides={LV: Standing.GAP})
    b = school("B", lv=50, overrides={LV: Standing.STRENGTH})
    p = propose([a, b], [])
    assert p.standings["A"][LV] is Standing.GAP
    assert p.standings["B"][LV] is Standing.STRENGTH
    assert pairs(p) == {("B", "A")}
    assert p.ties[0].difference == -4000
    with pytest.raises(ValueError, match="unknown criterion"):
        propose([school("A", overrides={"Leadership": Standing.GAP})], [])


def test_load_is_spread_between_equal_mentors() -> None:
    a, b = school("A", lv=80), school("B", lv=80)
    c, d = school("C", lv=40), school("D", lv=40)
    p = propose([a, b, c, d], [], Settings(max_mentees=2))
    assert len(p.ties) == 2
    assert {t.mentor for t in p.ties} == {"A", "B"}
    assert p.objective.sum_squares == 4 and p.objective.max_ties == 1


def test_load_counts_each_role_apart() -> None:
    # A is mentored in CURR and could mentor C in LV as well as B could:
    # its two roles add 1 + 1, not (1 + 1) squared, so either is optimal.
    a = school("A", curr=40)
    b, c = school("B"), school("C", lv=40)
    p = propose([a, b, c], [])
    assert len(p.ties) == 2
    assert p.objective.sum_squares == 4
    assert p.objective.difference == 8000


def test_a_hundredth_of_difference_comes_before_the_load() -> None:
    # A is a hundredth stronger than B: it takes both mentees, though
    # sharing them would spread the load (level 2 before level 3)
    a, b = school("A", lv=80.01), school("B", lv=80)
    c, d = school("C", lv=40), school("D", lv=40)
    p = propose([a, b, c, d], [], Settings(max_mentees=2))
    assert pairs(p) == {("A", "C"), ("A", "D")}
    assert p.objective.sum_squares == 4 + 1 + 1


def test_in_cluster_mentors_come_before_any_difference() -> None:
    # A, in the cluster, is marked strong with 0; C and E are marked gaps
    # with 100: A mentoring both costs the most difference there can be,
    # and still comes before two Digital Schools at 100 (level 1b)
    a = school("A", lv=0, overrides={LV: Standing.STRENGTH})
    c = school("C", lv=100, overrides={LV: Standing.GAP})
    e = school("E", lv=100, overrides={LV: Standing.GAP})
    outside = [digital("D1", lv=100), digital("D2", lv=100)]
    p = propose([a, c, e], outside, Settings(max_mentees=2))
    assert pairs(p) == {("A", "C"), ("A", "E")}
    assert p.objective.difference == -2 * 10_000


def test_committed_places_and_propose_all() -> None:
    d = digital("D", lv=100)
    k1 = [school("A", cluster="K1", lv=10)]
    k2 = [school("B", cluster="K2", lv=10)]
    settings = Settings(max_mentees=1)
    assert propose(k2, [d], settings, {("D", LV): 1}).ties == ()
    both = propose_all([*k1, *k2], [d], settings)
    assert pairs(both["K1"]) == {("D", "A")}
    assert both["K2"].ties == ()
    both = propose_all([*k1, *k2], [d], Settings(max_mentees=2))
    assert pairs(both["K2"]) == {("D", "B")}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        propose([], [])
    with pytest.raises(ValueError, match="same cluster"):
        propose([school("A", cluster="K1"), school("B", cluster="K2")], [])
    with pytest.raises(ValueError, match="repeated"):
        propose([school("A"), school("A")], [])
    with pytest.raises(ValueError):
        propose([school("A", lv=101)], [])



# ------------------------------------------------- against brute force


def random_instance(rng: random.Random) -> tuple[list[School], list[School],
                                                 Settings]:
    """2-5 schools, 0-2 Digital Schools, over two councils. Half the
    instances draw scores from a few values only: many tie sets are then
    equal on levels 1-2, which is where level 3 has work to do. A quarter
    draw them a hundredth apart, so that a hundredth of difference (level
    2) competes with the load (level 3)."""
    councils = ["Fife", "Fife", "Angus"]
    n = rng.randint(2, 5)
    coarse = rng.random() < 0.5
    close = not coarse and rng.random() < 0.5
    cluster = []
    for i in range(n):
        scores: dict[str, float]
        if coarse:
            scores = {c: rng.choice([30, 50, 80, 80, 90]) for c in CRITERIA}
        elif close:
            scores = {c: rng.choice([30, 30.01, 79.99, 80, 80.01, 80.02])
                      for c in CRITERIA}
        else:
            scores = {c: rng.choice([rng.randint(0, 100),
                                     rng.randint(55, 85),
                                     rng.randint(60, 80) + 0.25])
                      for c in CRITERIA}
        overrides = {}
        if rng.random() < 0.15:
            overrides[rng.choice(CRITERIA)] = rng.choice(list(Standing))
        cluster.append(School(f"S{i}", rng.choice(councils), scores, "K",
                              overrides))
    outside = [School(f"D{i}", rng.choice(councils),
                      {c: rng.choice([60, 80, 90]) if coarse
                       else rng.randint(60, 100) for c in CRITERIA})
               for i in range(rng.randint(0, 2))]
    settings = Settings(max_mentees=rng.randint(1, 3),
                        strength_threshold=rng.choice([70, 70, 65]))
    return cluster, outside, settings


def random_committed(rng: random.Random, outside: Sequence[School],
                     settings: Settings) -> dict[tuple[str, str], int]:
    """Places the Digital Schools already give other clusters, sometimes."""
    if rng.random() < 0.7:
        return {}
    return {(d.id, c): rng.randint(0, settings.max_mentees)
            for d in outside for c in CRITERIA if rng.random() < 0.5}


def strong(s: School, c: str, threshold: float) -> bool:
    if c in s.overrides:
        return s.overrides[c] is Standing.STRENGTH
    return s.scores.get(c, 0) >= threshold


def criterion_options(cluster: Sequence[School], outside: Sequence[School],
                      settings: Settings,
                      committed: dict[tuple[str, str], int],
                      c: str) -> list[tuple]:
    """Every feasible tie set of one criterion, each as (key, ties) where
    key = (covered, in cluster, difference in hundredths) and ties is a set
    of (mentor id, mentee id)."""
    t = settings.strength_threshold
    mentees = [g for g in cluster if not strong(g, c, t)]
    mentors = [m for m in cluster if strong(m, c, t)] + [
        d for d in outside if strong(d, c, t)]
    inside = {s.id for s in cluster}
    choices = []
    for g in mentees:
        options: list[School | None] = [None]
        options += [m for m in mentors if m.id != g.id and (
            m.id in inside or m.council == g.council)]
        choices.append(options)
    found = []
    for pick in itertools.product(*choices):
        uses = Counter(m.id for m in pick if m is not None)
        if any(v > settings.max_mentees - committed.get((m, c), 0)
               for m, v in uses.items()):
            continue
        ties = [(m, g) for m, g in zip(pick, mentees, strict=True)
                if m is not None]
        key = (len(ties), sum(m.id in inside for m, _ in ties),
               sum(round(100 * m.scores[c]) - round(100 * g.scores[c])
                   for m, g in ties))
        found.append((key, frozenset((m.id, g.id) for m, g in ties)))
    return found


def load(tie_sets: Sequence[frozenset]) -> int:
    """Level 3: the sum over schools of the square of the ties it gives as
    a mentor plus the square of the ties it is given as a mentee, all
    criteria together."""
    gives: Counter[str] = Counter()
    takes: Counter[str] = Counter()
    for ties in tie_sets:
        for m, g in ties:
            gives[m] += 1
            takes[g] += 1
    return sum(v * v for v in (*gives.values(), *takes.values()))


def value(keys: Sequence[tuple], tie_sets: Sequence[frozenset]) -> tuple:
    """The objective of a choice of one tie set per criterion, as a tuple
    the optimum maximises: (covered, in cluster, difference, -load)."""
    covered, in_cluster, difference = (sum(k) for k in zip(*keys,
                                                          strict=True))
    return covered, in_cluster, difference, -load(tie_sets)


JOINT = 20_000  # whole products of tie sets up to this size are tried


def brute_force(options: Sequence[list[tuple]]) -> tuple[tuple, bool, bool]:
    """The best value over every choice of one feasible tie set per
    criterion; whether every combination was tried (when there are at most
    JOINT); whether level 3 had a choice.

    Otherwise only combinations of each criterion's best tie sets on
    (1a, 1b, 2) are tried, which finds the same optimum: those levels are
    sums over the criteria, and a sum of vectors is lexicographically
    greatest only when each term is (the order is compatible with
    addition). Where both are tried, they must agree."""
    best_sets = []
    for found in options:
        top = max(key for key, _ in found)
        best_sets.append([(key, ties) for key, ties in found if key == top])
    values = {value(*zip(*combo, strict=True))
              for combo in itertools.product(*best_sets)}
    best = max(values)
    full = math.prod(len(found) for found in options) <= JOINT
    if full:
        everything = max(value(*zip(*combo, strict=True))
                         for combo in itertools.product(*options))
        assert everything == best
    return best, full, len(values) > 1


def check_feasible(p: Proposal, cluster: Sequence[School],
                   outside: Sequence[School], settings: Settings,
                   committed: dict[tuple[str, str], int]) -> None:
    by_id = {s.id: s for s in (*cluster, *outside)}
    inside = {s.id for s in cluster}
    seen: Counter[tuple[str, str]] = Counter()
    uses: Counter[tuple[str, str]] = Counter()
    t = settings.strength_threshold
    for tie in p.ties:
        m, g = by_id[tie.mentor], by_id[tie.mentee]
        assert m.id != g.id and g.id in inside
        assert strong(m, tie.criterion, t) and not strong(g, tie.criterion, t)
        assert m.id in inside or m.council == g.council
        assert tie.in_cluster == (m.id in inside)
        seen[(g.id, tie.criterion)] += 1
        uses[(m.id, tie.criterion)] += 1
    assert max(seen.values(), default=0) <= 1
    for key, n in uses.items():
        assert n <= settings.max_mentees - committed.get(key, 0)
    gaps = {(s.id, c) for s in cluster for c in CRITERIA
            if not strong(s, c, t)}
    assert {(f.school, f.criterion) for f in p.fallbacks} == gaps - set(seen)


def test_optimal_against_brute_force() -> None:
    """All four levels, 1a to 3, equal the brute-force optimum, on every
    one of many small random clusters.

    The proposal's value is worked out here from its ties alone (its
    Objective must agree), then compared with the best over every feasible
    choice of ties in all criteria together (see brute_force)."""
    rng = random.Random(20240611)
    instances = 500
    joint = choice = 0
    for _ in range(instances):
        cluster, outside, settings = random_instance(rng)
        committed = random_committed(rng, outside, settings)
        p = propose(cluster, outside, settings, committed)
        check_feasible(p, cluster, outside, settings, committed)
        options = [criterion_options(cluster, outside, settings, committed,
                                     c) for c in CRITERIA]
        chosen = []
        for c, found in zip(CRITERIA, options, strict=True):
            ties = frozenset((t.mentor, t.mentee) for t in p.ties
                             if t.criterion == c)
            (key,) = {key for key, other in found if other == ties}
            chosen.append((key, ties))
        mine = value(*zip(*chosen, strict=True))
        o = p.objective
        assert mine == (o.covered, o.in_cluster, o.difference,
                        -o.sum_squares)
        best, full, more = brute_force(options)
        assert mine == best
        joint += full
        choice += more
    print(f"every combination tried in {joint} of {instances} instances; "
          f"level 3 had a choice in {choice}")
    # seeded, so deterministic: the instances must keep both kinds common
    assert joint >= instances // 4
    assert choice >= instances // 4


def test_ties_carry_their_scores() -> None:
    a = school("A", lv=80.5)
    b = school("B", lv=200 / 3)
    (tie,) = propose([a, b], []).ties
    assert tie == Tie("A", "B", LV, True, 8050 - 6667)


def test_same_input_same_proposal() -> None:
    rng = random.Random(7)
    for _ in range(20):
        cluster, outside, settings = random_instance(rng)
        assert propose(cluster, outside, settings) == propose(
            list(cluster), list(outside), settings)
