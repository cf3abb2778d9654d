"""How fast the matrix of supports is for the whole country at once.

    .venv/bin/python bench/matrix.py [--schools 2500] [--clusters 300]
                                     [--seed 1] [--max-mentees 2] [--trace]

Generates (seeded) a country: the 32 councils, 300 clusters of 2,500
schools in all, each cluster within one council, plus about 10% as many
already-awarded Digital Schools spread over the councils by size. A
self-review score is the share of a criterion's statements addressed, drawn
per statement from the school's overall readiness and its own leaning per
criterion, so scores are fractions like 66.67% and schools differ in shape.
Awarded schools have at least 70% everywhere.

Then `propose_all` (mailbot/matrix.py) makes every cluster's proposal, in
one process on one core. It prints the total time, the slowest cluster,
the peak memory (the process's peak RSS; with --trace also what
tracemalloc sees in a second, traced run, about ten times slower) and what
the proposals contain. It asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import time
import tracemalloc
from collections import Counter

from mailbot.councils import COUNCILS
from mailbot.matrix import (
    CRITERIA,
    Proposal,
    School,
    Settings,
    propose,
)

# statements per criterion (illustrative: scores come out as fractions)
STATEMENTS = dict(zip(CRITERIA, (9, 12, 8, 7, 10), strict=True))
# how hard each criterion tends to be, added to a school's readiness
EASE = dict(zip(CRITERIA, (0.08, -0.05, 0.05, -0.08, 0.0), strict=True))


def review(rng: random.Random, readiness: float,
           floor: float = 0) -> dict[str, float]:
    """Scores of one self-review; none below `floor` percent."""
    scores = {}
    for c in CRITERIA:
        p = min(0.98, max(0.02, readiness + EASE[c] + rng.gauss(0, 0.15)))
        n = STATEMENTS[c]
        addressed = sum(rng.random() < p for _ in range(n))
        addressed = max(addressed, math.ceil(n * floor / 100))
        scores[c] = 100 * addressed / n
    return scores


def split(rng: random.Random, total: int, parts: int, low: int,
          weights: list[float]) -> list[int]:
    """`total` over `parts`, at least `low` each, the rest by weight."""
    sizes = [low] * parts
    rest = total - low * parts
    for i in rng.choices(range(parts), weights=weights, k=rest):
        sizes[i] += 1
    return sizes


def country(seed: int, n_schools: int, n_clusters: int,
            ) -> tuple[list[School], list[School]]:
    rng = random.Random(seed)
    weight = [rng.lognormvariate(0, 0.7) for _ in COUNCILS]
    per_council = split(rng, n_clusters, len(COUNCILS), 2, weight)
    cluster_council = [c for c, k in zip(COUNCILS, per_council, strict=True)
                       for _ in range(k)]
    sizes = split(rng, n_schools, n_clusters, 3,
                  [rng.uniform(0.5, 1.5) for _ in range(n_clusters)])
    schools = []
    for k, (council, size) in enumerate(
            zip(cluster_council, sizes, strict=True)):
        cluster = f"C{k:03d}"
        for i in range(size):
            readiness = rng.betavariate(4, 3)
            schools.append(School(f"{cluster}-{i:02d}", council,
                                  review(rng, readiness), cluster))
    by_council = Counter(s.council for s in schools)
    digital = []
    for i, council in enumerate(rng.choices(
            list(by_council), weights=list(by_council.values()),
            k=n_schools // 10)):
        scores = review(rng, rng.uniform(0.75, 0.95), floor=70)
        digital.append(School(f"DS{i:04d}", council, scores))
    return schools, digital


def solve(schools: list[School], digital: list[School], settings: Settings,
          ) -> tuple[dict[str, Proposal], list[float]]:
    """propose_all, written out here to time each cluster."""
    by_cluster: dict[str, list[School]] = {}
    for s in schools:
        assert s.cluster is not None
        by_cluster.setdefault(s.cluster, []).append(s)
    by_council: dict[str, list[School]] = {}
    for d in digital:
        by_council.setdefault(d.council, []).append(d)
    committed: Counter[tuple[str, str]] = Counter()
    proposals, seconds = {}, []
    for cluster in sorted(by_cluster):
        members = by_cluster[cluster]
        nearby = [d for council in sorted({s.council for s in members})
                  for d in by_council.get(council, ())]
        start = time.perf_counter()
        p = propose(members, nearby, settings, committed)
        seconds.append(time.perf_counter() - start)
        for tie in p.ties:
            if not tie.in_cluster:
                committed[(tie.mentor, tie.criterion)] += 1
        proposals[cluster] = p
    return proposals, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, default=2500)
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-mentees", type=int, default=2)
    parser.add_argument("--trace", action="store_true",
                        help="also measure the peak with tracemalloc")
    args = parser.parse_args()
    settings = Settings(max_mentees=args.max_mentees)

    schools, digital = country(args.seed, args.schools, args.clusters)
    print(f"{len(schools)} schools in {args.clusters} clusters, "
          f"{len(digital)} Digital Schools, {len(COUNCILS)} councils, "
          f"max_mentees {settings.max_mentees}")
    sizes = Counter(s.cluster for s in schools).values()
    print(f"cluster size {min(sizes)}-{max(sizes)}")

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    proposals, seconds = solve(schools, digital, settings)
    total = time.perf_counter() - start
    slowest = max(range(len(seconds)), key=seconds.__getitem__)
    print(f"total {total:.2f} s; per cluster mean "
          f"{1000 * total / len(seconds):.1f} ms, max "
          f"{1000 * seconds[slowest]:.1f} ms ({sorted(proposals)[slowest]})")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS of the process {rss / 1024:.1f} MiB "
          f"({(rss - before) / 1024:.1f} MiB more than before solving)")
    if args.trace:
        tracemalloc.start()
        solve(schools, digital, settings)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak traced allocation while solving {peak / 2**20:.1f} MiB"
              " (a second run, slower under tracemalloc)")

    objectives = [p.objective for p in proposals.values()]
    gaps = sum(o.gaps for o in objectives)
    covered = sum(o.covered for o in objectives)
    inside = sum(o.in_cluster for o in objectives)
    support = Counter(f.support.value for p in proposals.values()
                      for f in p.fallbacks)
    print(f"gaps {gaps}; covered {covered} ({100 * covered / gaps:.1f}%): "
          f"{inside} in cluster, {covered - inside} by Digital Schools; "
          "fallback " + ", ".join(f"{k} {v}" for k, v in support.items()))
    print(f"most ties for one school {max(o.max_ties for o in objectives)}")


if __name__ == "__main__":
    main()
