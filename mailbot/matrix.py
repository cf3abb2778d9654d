"""The matrix of supports: who mentors whom, and who else helps with a gap.

Pure functions over typed dataclasses: no record, no mail. MISSION.md,
step 3: from the schools' self-reviews, propose school matching (a school
strong in a criterion mentors a school weak in it), mentoring from Digital
Schools outside the cluster in the same council, and the validator's,
council's or Education Scotland's support for what is left.

Standing
    Every score is a percentage (0-100) of a criterion's statements
    addressed. Scores are compared and added as whole hundredths of a
    percentage point (``to_hundredths``: 66.666... counts as 66.67), so all
    arithmetic below is on integers and exact. A criterion is a *strength*
    at or above ``Settings.strength_threshold`` (70 by default) and a *gap*
    below it; a score missing from a self-review counts as 0. An explicit
    override (``School.overrides``, e.g. from the comments) replaces the
    rule for that school and criterion.

Ties
    A tie is (mentor, mentee, criterion). The mentor is a strength in the
    criterion, the mentee a gap in it (so no school ever mentors itself),
    and the mentor is a school of the cluster or a Digital School outside
    it in the mentee's council. Each mentor takes at most
    ``Settings.max_mentees`` mentees per criterion (for an outside school,
    less what it already gives other clusters: ``committed``); each gap has
    at most one mentor. A school may mentor in one criterion and be
    mentored in another.

Objective, lexicographic, for one cluster:
    1a. maximise the number of gaps covered by a mentor;
    1b. among those, maximise the number of ties whose mentor is in the
        cluster (an outside Digital School is never chosen at the cost of a
        covered gap, nor where a cluster school could take its place);
    2.  among those, maximise the sum over ties of (mentor's score -
        mentee's score), in hundredths;
    3.  among those, minimise the sum over schools (cluster and outside) of
        the square of the number of ties the school is in, as mentor or
        mentee, over all criteria: spread the load.

What is guaranteed
    1a, 1b and 2 are separable by criterion, and each criterion is a
    bipartite b-matching solved exactly as a min-cost max-flow (source ->
    mentor, capacity max_mentees; mentor -> mentee, one arc per eligible
    pair; mentee -> sink, capacity 1) by successive shortest paths:
    Bellman-Ford for the first potentials, then Dijkstra on reduced costs.
    The flow is maximum (1a) and of least cost among maximum flows; a
    pair's cost is -(W * in_cluster + K * difference) plus the level-3
    load cost, with integer weights K > any spread of the load cost and
    W > any spread of K * (sum of differences) + load cost, so least cost
    is the lexicographic optimum of (1b, 2, then 3). Hence the proposal is
    a lexicographic optimum of (1a, 1b, 2); tests/test_matrix.py checks it
    against brute force.

    Level 3 couples the criteria (a tie loads two schools, in two roles, so
    the square of a school's total is not a network-flow cost) and is NOT
    solved to global optimality. It is block coordinate descent: one
    criterion at a time, the others fixed, a school's load is a convex
    cost on its source or sink arc (in one criterion a school is mentor or
    mentee, never both), so that criterion's ties are chosen exactly to
    minimise the total sum of squares among its (1a, 1b, 2)-optimal tie
    sets. Passes repeat, a change is kept only if it lowers the sum of
    squares, until a whole pass changes nothing. This runs from up to five
    starting orders (each criterion first once, the rest in turn) and the
    lowest sum of squares is kept, the earliest start on equality.
    Guaranteed: levels 1a, 1b and 2 optimal; and no single criterion's ties
    can be rearranged, keeping those optimal, to lower the sum of squares.
    A change to several criteria at once may still lower it: on the small
    random clusters of tests/test_matrix.py the global optimum is missed
    in about 1 case in 150 to 300, by 2.

Fallback for gaps with no mentor (``Settings``)
    Uncovered gaps are ordered by shortfall (threshold - score, smallest
    first), then by criterion in ``Settings.criteria`` order, then by school
    id. The validator's guidance takes the first ``validator_gaps`` (3 by
    default) in the cluster, the council the next ``council_gaps`` (6 by
    default), Education Scotland the rest. Rationale: a gap near the
    threshold needs guidance, a wide one needs professional learning from
    further up. ``None`` means no limit.

Across clusters
    ``propose`` solves one cluster. ``propose_all`` solves clusters in order
    of cluster id and passes on what each outside Digital School has already
    taken, so no school exceeds ``max_mentees`` per criterion nationally;
    that order is first come, first served, not a national optimum.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

CRITERIA: tuple[str, ...] = (
    "Leadership & Vision",
    "Use of Digital Technology to Deliver the Curriculum",
    "School Culture",
    "Professional Development",
    "Resources & Infrastructure",
)

FULL = 10_000  # 100% in hundredths of a percentage point


class Standing(StrEnum):
    STRENGTH = "strength"
    GAP = "gap"


class Support(StrEnum):
    VALIDATOR = "validator"
    COUNCIL = "council"
    EDUCATION_SCOTLAND = "Education Scotland"


@dataclass(frozen=True)
class School:
    """A school of a cluster, or an awarded Digital School (cluster None)."""

    id: str
    council: str
    scores: Mapping[str, float]
    cluster: str | None = None
    overrides: Mapping[str, Standing] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    criteria: tuple[str, ...] = CRITERIA
    strength_threshold: float = 70
    max_mentees: int = 2  # per mentor per criterion
    validator_gaps: int | None = 3  # per cluster; None: no limit
    council_gaps: int | None = 6  # per cluster, after the validator's


@dataclass(frozen=True)
class Tie:
    mentor: str
    mentee: str
    criterion: str
    in_cluster: bool  # the mentor is a school of the cluster
    difference: int  # mentor's score - mentee's score, in hundredths


@dataclass(frozen=True)
class Fallback:
    school: str
    criterion: str
    support: Support
    shortfall: int  # threshold - score, in hundredths (<= 0 if overridden)


@dataclass(frozen=True)
class Objective:
    gaps: int
    covered: int  # 1a
    in_cluster: int  # 1b
    difference: int  # 2, in hundredths
    sum_squares: int  # 3
    max_ties: int  # reported, not optimised


@dataclass(frozen=True)
class Proposal:
    cluster: str
    standings: Mapping[str, Mapping[str, Standing]]  # school -> criterion ->
    ties: tuple[Tie, ...]
    fallbacks: tuple[Fallback, ...]
    objective: Objective
    ties_per_school: Mapping[str, int]


def to_hundredths(score: float) -> int:
    """A percentage as whole hundredths of a point, rounded half to even."""
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise ValueError(f"a score must be a number, not {score!r}")
    if not math.isfinite(score) or not 0 <= score <= 100:
        raise ValueError(f"a score must be between 0 and 100, not {score!r}")
    exact = Decimal(str(score)).scaleb(2)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


# --------------------------------------------------------------- the model


@dataclass
class _Party:
    id: str
    council: str
    in_cluster: bool
    scores: tuple[int, ...]  # hundredths, per criterion index
    standing: tuple[Standing, ...]


def _party(school: School, settings: Settings, threshold: int,
           in_cluster: bool) -> _Party:
    known = set(settings.criteria)
    for name in (*school.scores, *school.overrides):
        if name not in known:
            raise ValueError(f"{school.id}: unknown criterion {name!r}")
    scores = tuple(to_hundredths(school.scores.get(c, 0))
                   for c in settings.criteria)
    standing = []
    for c, score in zip(settings.criteria, scores, strict=True):
        override = school.overrides.get(c)
        if override is not None:
            standing.append(Standing(override))
        else:
            standing.append(Standing.STRENGTH if score >= threshold
                            else Standing.GAP)
    return _Party(school.id, school.council, in_cluster, scores,
                  tuple(standing))


def _check(settings: Settings) -> int:
    if not settings.criteria or len(set(settings.criteria)) != len(
            settings.criteria):
        raise ValueError("criteria must be a non-empty list without repeats")
    if settings.max_mentees < 0:
        raise ValueError("max_mentees must not be negative")
    for limit in (settings.validator_gaps, settings.council_gaps):
        if limit is not None and limit < 0:
            raise ValueError("fallback limits must not be negative")
    return to_hundredths(settings.strength_threshold)


# ------------------------------------------------------ min-cost max-flow


class _Flow:
    """Min-cost max-flow by successive shortest paths (Dijkstra with
    potentials). Arc i and its residual twin i ^ 1 sit side by side. The
    first potentials come from Bellman-Ford, so arcs may cost less than
    zero as long as the graph has no negative cycle (ours are DAGs)."""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes
        self.out: list[list[int]] = [[] for _ in range(nodes)]
        self.head: list[int] = []
        self.cap: list[int] = []
        self.cost: list[int] = []

    def arc(self, tail: int, head: int, cap: int, cost: int) -> int:
        index = len(self.head)
        self.out[tail].append(index)
        self.head.append(head)
        self.cap.append(cap)
        self.cost.append(cost)
        self.out[head].append(index + 1)
        self.head.append(tail)
        self.cap.append(0)
        self.cost.append(-cost)
        return index

    def flow(self, index: int) -> int:
        return self.cap[index ^ 1]

    def run(self, source: int, sink: int) -> int:
        """Pushes a maximum flow of least cost; returns the flow."""
        head, cap, cost, out = self.head, self.cap, self.cost, self.out
        inf = math.inf
        # Bellman-Ford for the first potentials; unreachable nodes never
        # become reachable, so their potential does not matter.
        potential: list[float] = [inf] * self.nodes
        potential[source] = 0
        for _ in range(self.nodes):
            changed = False
            for u in range(self.nodes):
                pu = potential[u]
                if pu == inf:
                    continue
                for a in out[u]:
                    if cap[a] > 0 and pu + cost[a] < potential[head[a]]:
                        potential[head[a]] = pu + cost[a]
                        changed = True
            if not changed:
                break
        else:
            raise AssertionError("negative cycle in the matching graph")
        pot = [0 if p == inf else int(p) for p in potential]
        total = 0
        while True:
            dist: list[float] = [inf] * self.nodes
            via = [-1] * self.nodes
            dist[source] = 0
            queue: list[tuple[float, int]] = [(0, source)]
            while queue:
                d, u = heapq.heappop(queue)
                if d > dist[u]:
                    continue
                for a in out[u]:
                    if cap[a] <= 0:
                        continue
                    v = head[a]
                    nd = d + cost[a] + pot[u] - pot[v]
                    if nd < dist[v]:
                        dist[v] = nd
                        via[v] = a
                        heapq.heappush(queue, (nd, v))
            if dist[sink] == inf:
                return total
            for v in range(self.nodes):
                if dist[v] != inf:
                    pot[v] += int(dist[v])
            push = math.inf
            v = sink
            while v != source:
                a = via[v]
                push = min(push, cap[a])
                v = head[a ^ 1]
            step = int(push)
            v = sink
            while v != source:
                a = via[v]
                cap[a] -= step
                cap[a ^ 1] += step
                v = head[a ^ 1]
            total += step


# --------------------------------------------------- one criterion's ties


def _eligible(mentor: _Party, mentee: _Party, c: int) -> bool:
    return (mentor.id != mentee.id
            and mentor.standing[c] is Standing.STRENGTH
            and mentee.standing[c] is Standing.GAP
            and (mentor.in_cluster or mentor.council == mentee.council))


def _solve_criterion(c: int, mentors: Sequence[_Party],
                     capacity: Sequence[int], mentees: Sequence[_Party],
                     load: Mapping[str, int]) -> list[tuple[int, int]]:
    """The (mentor, mentee) index pairs of a lexicographic optimum of
    (1a, 1b, 2, then sum of squares given the other criteria's `load`)."""
    pairs = [(i, j) for i, m in enumerate(mentors) if capacity[i] > 0
             for j, g in enumerate(mentees) if _eligible(m, g, c)]
    if not pairs:
        return []
    n = len(mentees)
    top = max((load.get(p.id, 0) for p in (*mentors, *mentees)), default=0)
    most = min(max(capacity), n)
    # Weights that make the single cost lexicographic: any change in the
    # in-cluster count outweighs any change in the difference sum (spread
    # at most 2 * n * FULL), which outweighs any change in the load cost.
    load_span = n * (4 * top + 2 * most)
    k = load_span + 1
    w = k * (2 * n * FULL + 1)
    # nodes in topological order: source, mentors, mentees, sink
    first = 1 + len(mentors)
    source, sink = 0, first + len(mentees)
    flow = _Flow(sink + 1)
    for i, m in enumerate(mentors):
        base = load.get(m.id, 0)
        for extra in range(1, min(capacity[i], n) + 1):
            # (base + extra)^2 - (base + extra - 1)^2: convex in `extra`
            flow.arc(source, 1 + i, 1, 2 * (base + extra) - 1)
    for j, g in enumerate(mentees):
        flow.arc(first + j, sink, 1, 2 * load.get(g.id, 0) + 1)
    arcs = []
    for i, j in pairs:
        m, g = mentors[i], mentees[j]
        gain = w * m.in_cluster + k * (m.scores[c] - g.scores[c])
        arcs.append(flow.arc(1 + i, first + j, 1, -gain))
    flow.run(source, sink)
    return [pair for pair, a in zip(pairs, arcs, strict=True)
            if flow.flow(a)]


# ------------------------------------------------------------- proposals


def _sum_squares(loads: Mapping[str, int]) -> int:
    return sum(v * v for v in loads.values())


_STARTS = 5  # starting orders tried by _descend, see the module docstring


@dataclass
class _Plan:
    index: int
    name: str
    mentors: list[_Party]
    capacity: list[int]
    mentees: list[_Party]
    # solutions by the load of each mentor and mentee: the same load gives
    # the same ties, and the starts and passes of _descend meet the same
    # loads often
    seen: dict[tuple[int, ...], list[Tie]] = field(default_factory=dict)

    def solve(self, load: Mapping[str, int]) -> list[Tie]:
        key = tuple(load.get(p.id, 0) for p in (*self.mentors, *self.mentees))
        if key not in self.seen:
            self.seen[key] = self._solve(load)
        return self.seen[key]

    def _solve(self, load: Mapping[str, int]) -> list[Tie]:
        chosen = _solve_criterion(self.index, self.mentors, self.capacity,
                                  self.mentees, load)
        c = self.index
        return [Tie(self.mentors[i].id, self.mentees[j].id, self.name,
                    self.mentors[i].in_cluster,
                    self.mentors[i].scores[c] - self.mentees[j].scores[c])
                for i, j in chosen]


def _descend(order: Sequence[_Plan],
             ) -> tuple[list[list[Tie]], dict[str, int]]:
    """Block coordinate descent on the sum of squares, criteria visited in
    `order`: the ties of each criterion, in criterion order, and the load
    of each school."""
    ties: dict[int, list[Tie]] = {p.index: [] for p in order}
    loads: dict[str, int] = defaultdict(int)

    def replace(plan: _Plan, new: list[Tie]) -> None:
        for tie in ties[plan.index]:
            loads[tie.mentor] -= 1
            loads[tie.mentee] -= 1
        ties[plan.index] = new
        for tie in new:
            loads[tie.mentor] += 1
            loads[tie.mentee] += 1

    for plan in order:  # first pass: each given the ones before
        replace(plan, plan.solve(loads))
    improved = True
    while improved:
        improved = False
        for plan in order:
            before = _sum_squares(loads)
            old = ties[plan.index]
            replace(plan, [])  # its own ties are not part of the base load
            replace(plan, plan.solve(loads))
            if _sum_squares(loads) < before:
                improved = True
            else:
                replace(plan, old)
    return [ties[i] for i in sorted(ties)], dict(loads)


def propose(cluster: Sequence[School], digital_schools: Iterable[School],
            settings: Settings | None = None,
            committed: Mapping[tuple[str, str], int] | None = None,
            ) -> Proposal:
    """The matrix of supports for one cluster (see the module docstring).

    `digital_schools` may hold any awarded schools; only those outside the
    cluster in a mentee's council mentor it. `committed` maps (school id,
    criterion) to mentees that school already has in other clusters.
    """
    settings = settings or Settings()
    threshold = _check(settings)
    criteria = settings.criteria
    if not cluster:
        raise ValueError("a cluster needs at least one school")
    cluster_id = cluster[0].cluster
    if cluster_id is None or any(s.cluster != cluster_id for s in cluster):
        raise ValueError("every school must carry the same cluster id")
    inside = [_party(s, settings, threshold, True) for s in cluster]
    ids = {p.id for p in inside}
    if len(ids) != len(inside):
        raise ValueError(f"cluster {cluster_id}: a school id is repeated")
    councils = {p.council for p in inside}
    outside = []
    for s in digital_schools:
        if s.council in councils and s.cluster != cluster_id:
            if s.id in ids:
                raise ValueError(f"{s.id} is both in the cluster and outside")
            ids.add(s.id)
            outside.append(_party(s, settings, threshold, False))
    committed = committed or {}

    plan = []
    for c, name in enumerate(criteria):
        mentors = [p for p in (*inside, *outside)
                   if p.standing[c] is Standing.STRENGTH]
        capacity = [max(0, settings.max_mentees - committed.get(
            (p.id, name), 0)) for p in mentors]
        mentees = [p for p in inside if p.standing[c] is Standing.GAP]
        plan.append(_Plan(c, name, mentors, capacity, mentees))

    # Several starts, each a different first criterion; the best is kept
    # (the first of equals), so the result is the same every time.
    best: tuple[list[list[Tie]], dict[str, int]] | None = None
    for first in range(min(_STARTS, len(plan))):
        found = _descend(plan[first:] + plan[:first])
        if best is None or _sum_squares(found[1]) < _sum_squares(best[1]):
            best = found
    assert best is not None
    per_criterion, loads = best
    ties = tuple(t for group in per_criterion for t in group)
    covered = {(t.mentee, t.criterion) for t in ties}
    uncovered = sorted(
        (threshold - p.scores[c], c, p.id)
        for c in range(len(criteria)) for p in inside
        if p.standing[c] is Standing.GAP
        and (p.id, criteria[c]) not in covered)
    fallbacks = []
    v_limit = settings.validator_gaps
    c_limit = settings.council_gaps
    for rank, (shortfall, c, school) in enumerate(uncovered):
        if v_limit is None or rank < v_limit:
            support = Support.VALIDATOR
        elif c_limit is None or rank < v_limit + c_limit:
            support = Support.COUNCIL
        else:
            support = Support.EDUCATION_SCOTLAND
        fallbacks.append(Fallback(school, criteria[c], support, shortfall))

    per_school = {k: v for k, v in loads.items() if v}
    gaps = sum(p.standing[c] is Standing.GAP
               for p in inside for c in range(len(criteria)))
    return Proposal(
        cluster=cluster_id,
        standings={p.id: dict(zip(criteria, p.standing, strict=True))
                   for p in inside},
        ties=ties,
        fallbacks=tuple(fallbacks),
        objective=Objective(
            gaps=gaps,
            covered=len(ties),
            in_cluster=sum(t.in_cluster for t in ties),
            difference=sum(t.difference for t in ties),
            sum_squares=_sum_squares(per_school),
            max_ties=max(per_school.values(), default=0),
        ),
        ties_per_school=per_school,
    )


def propose_all(schools: Iterable[School], digital_schools: Iterable[School],
                settings: Settings | None = None) -> dict[str, Proposal]:
    """A proposal for every cluster, in order of cluster id; an outside
    Digital School's mentees in earlier clusters count against its
    `max_mentees` in later ones."""
    settings = settings or Settings()
    by_cluster: dict[str, list[School]] = defaultdict(list)
    for s in schools:
        if s.cluster is None:
            raise ValueError(f"{s.id} has no cluster id")
        by_cluster[s.cluster].append(s)
    by_council: dict[str, list[School]] = defaultdict(list)
    for d in digital_schools:
        by_council[d.council].append(d)
    committed: dict[tuple[str, str], int] = defaultdict(int)
    proposals = {}
    for cluster_id in sorted(by_cluster):
        members = by_cluster[cluster_id]
        nearby = [d for council in sorted({s.council for s in members})
                  for d in by_council.get(council, ())]
        proposal = propose(members, nearby, settings, committed)
        for tie in proposal.ties:
            if not tie.in_cluster:
                committed[(tie.mentor, tie.criterion)] += 1
        proposals[cluster_id] = proposal
    return proposals
