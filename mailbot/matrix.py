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
    3.  among those, minimise the load: the sum over schools (cluster and
        outside) of g^2 + t^2, where g is the number of ties the school
        gives as a mentor and t the number it is given as a mentee, each
        over all criteria. It spreads the mentoring over the strong
        schools and the cover over the weak ones. A school's two roles
        are counted apart: mentoring once and being mentored once adds
        1 + 1, not (1 + 1)^2 (``Objective.sum_squares`` is this sum;
        ``ties_per_school`` and ``max_ties`` report both roles together).

What is guaranteed
    The proposal is an exact lexicographic optimum of (1a, 1b, 2, 3): one
    min-cost max-flow over all criteria at once (``_match``), nodes in
    topological order:

        source -> G(s), for each school s that can mentor: unit arcs of
            cost 1, 3, 5, ..., as many as the ties s could give in all;
        G(s) -> O(s, c): capacity s's room in criterion c (max_mentees,
            less ``committed``, no more than its eligible mentees), cost 0;
        O(s, c) -> N(t, c), for each eligible pair: capacity 1, cost
            -(W * in_cluster + K * difference);
        N(t, c) -> R(t): capacity 1 (a gap has at most one mentor), cost 0;
        R(t) -> sink: unit arcs of cost 1, 3, 5, ..., one per gap of t
            that some school could cover.

    Proof. (i) The integral flows are exactly the feasible tie sets (a tie
    is a unit source -> G -> O -> N -> R -> sink): the arcs at G and R
    hold as many units as the school could ever take in that role, so the
    only binding limits are those of "Ties". Hence a maximum flow covers
    the most gaps possible: 1a. (ii) A least-cost flow that passes x units
    through G(s) uses the cheapest x of its parallel arcs (their costs
    differ, and any one may stand for another), paying 1 + 3 + ... +
    (2x - 1) = x^2; so does R(t). The least cost of tie set T is then
    L(T) - K D(T) - W I(T): L the load (level 3), D the difference sum, I
    the in-cluster count. (iii) With F the number of gaps with an eligible
    mentor (so at most F ties): 0 <= L <= 2 F^2 (each role's squares sum
    to at most the square of its total, at most F), and |D| <= F * FULL.
    With K = 2 F^2 + 1 and W = K (2 F FULL + 1), K exceeds any spread of
    L, and W any spread of L - K D. So between two maximum flows a
    difference in I decides the cost, failing that one in D, failing that
    one in L: a least-cost maximum flow is a lexicographic optimum.
    (iv) Successive shortest paths from the zero flow leave a flow of
    least cost for its value at every step and stop at a maximum flow; the
    network is acyclic, so its negative costs have first potentials
    (Bellman-Ford), then Dijkstra runs on reduced costs. All on Python
    integers, so exact. tests/test_matrix.py checks all four levels
    against brute force over hundreds of small random clusters (every
    combination of tie sets across the criteria, where that is small).

    Why not the square of a school's total ties, roles together (the
    level 3 of earlier versions, solved only by a local search): its ties
    as a mentor leave the source side of this network and its ties as a
    mentee reach the sink side, so a cost on their sum is the cost of no
    one arc, and no network-flow form of it is known here. Counting the
    roles apart is what makes level 3 a flow cost, hence exact.

    Among equal optima the choice is fixed by the order of the input, not
    by chance: the same input gives the same proposal.

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
import itertools
import math
from collections import Counter, defaultdict
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
    sum_squares: int  # 3: sum of (ties as mentor)^2 + (as mentee)^2
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


# --------------------------------------------------------------- the ties


def _eligible(mentor: _Party, mentee: _Party, c: int) -> bool:
    return (mentor.id != mentee.id
            and mentor.standing[c] is Standing.STRENGTH
            and mentee.standing[c] is Standing.GAP
            and (mentor.in_cluster or mentor.council == mentee.council))


def _match(parties: Sequence[_Party], inside: int,
           capacity: Sequence[Sequence[int]],
           ) -> list[tuple[int, int, int]]:
    """The (criterion, mentor, mentee) index triples of a lexicographic
    optimum of (1a, 1b, 2, 3), all criteria at once, as one min-cost
    max-flow (the network and the proof: the module docstring).

    `parties[:inside]` are the cluster's schools, the only mentees;
    `capacity[i][c]` is how many mentees party i may take in criterion c.
    """
    criteria = len(capacity[0]) if capacity else 0
    pairs = [(c, i, j) for c in range(criteria)
             for i, m in enumerate(parties) if capacity[i][c] > 0
             for j in range(inside) if _eligible(m, parties[j], c)]
    if not pairs:
        return []
    offered = Counter((c, i) for c, i, _ in pairs)
    # a mentor's room in a criterion: its capacity, no more than the
    # mentees it could take there; so the arcs below are never short
    room = {(c, i): min(capacity[i][c], n)
            for (c, i), n in sorted(offered.items())}
    gaps = sorted({(c, j) for c, _, j in pairs})
    gives: Counter[int] = Counter()  # the most ties a school can give
    for (_, i), r in room.items():
        gives[i] += r
    takes = Counter(j for _, j in gaps)  # the most it can be given
    # nodes in topological order: source 0, a node per school as mentor,
    # per (criterion, mentor), per (criterion, mentee) gap, per school as
    # mentee, then the sink
    number = itertools.count(1)
    mentor = {i: next(number) for i in sorted(gives)}
    offer = {key: next(number) for key in room}
    gap = {key: next(number) for key in gaps}
    mentee = {j: next(number) for j in sorted(takes)}
    sink = next(number)
    flow = _Flow(sink + 1)
    # Integer weights that make the one cost lexicographic. At most F =
    # `most` ties, so the load (level 3) is 0 to 2 F^2 < k, and the
    # difference sum spans at most 2 F FULL, so w > any spread of
    # load - k * differences.
    most = len(gaps)
    k = 2 * most * most + 1
    w = k * (2 * most * FULL + 1)
    for i, node in mentor.items():
        for n in range(1, gives[i] + 1):  # n^2 - (n - 1)^2: convex
            flow.arc(0, node, 1, 2 * n - 1)
    for (c, i), node in offer.items():
        flow.arc(mentor[i], node, room[(c, i)], 0)
    arcs = []
    for c, i, j in pairs:
        m, g = parties[i], parties[j]
        gain = w * m.in_cluster + k * (m.scores[c] - g.scores[c])
        arcs.append(flow.arc(offer[(c, i)], gap[(c, j)], 1, -gain))
    for (_, j), node in gap.items():
        flow.arc(node, mentee[j], 1, 0)
    for j, node in mentee.items():
        for n in range(1, takes[j] + 1):
            flow.arc(node, sink, 1, 2 * n - 1)
    flow.run(0, sink)
    return [t for t, a in zip(pairs, arcs, strict=True) if flow.flow(a)]


# ------------------------------------------------------------- proposals


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

    parties = [*inside, *outside]
    capacity = [[max(0, settings.max_mentees - committed.get((p.id, name), 0))
                 for name in criteria] for p in parties]
    ties = tuple(
        Tie(parties[i].id, parties[j].id, criteria[c], parties[i].in_cluster,
            parties[i].scores[c] - parties[j].scores[c])
        for c, i, j in sorted(_match(parties, len(inside), capacity)))
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

    gives = Counter(t.mentor for t in ties)
    takes = Counter(t.mentee for t in ties)
    per_school = dict(gives + takes)
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
            sum_squares=sum(v * v for v in (*gives.values(),
                                            *takes.values())),
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
