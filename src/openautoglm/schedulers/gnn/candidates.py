"""The full candidate set of the learned scheduler (``GNNScheduler(candidates="all")``).

::

    learned        learned priority, shares, earliest-finish placement
    clusters       learned priority, heavy edges kept on one worker (pins)
    heft           upward rank, earliest-finish placement, one core per task
    heft(comm xA)  HEFT's placement planned with A times slower transfers (COMM_SCALES)
    linear         upward rank, heaviest paths kept on one worker (linear clustering)
    heft+shares    upward rank with the learned shares (multi-core workers only)
    serial         upward rank, everything on the fastest worker, one core per task
    sampled        best of `samples` log-normal perturbations of the learned priority
    +iterated      each of them re-ranked by its realised upward rank (`iterate` rounds)
        --> the best TOP_K, each improved by iterated local search (+search)
        --> the winner's workers kept, re-ranked longest remaining path first (+ranked)

Every candidate is one makespan-only list-scheduling call on the same simulator the plan is
judged by; only the winner becomes a Schedule (in ``scheduler.py``). Graphs over
``full_up_to`` tasks get learned, heft(+shares) and serial only, and no improvement.
Tests: ``tests/schedulers/gnn/test_gnn.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.schedulers.gnn.local_search import (
    better,
    iterate_ranks,
    iterated_search,
    realised_rank,
)
from openautoglm.schedulers.gnn.placement import cluster_pins, linear_pins
from openautoglm.simulate.list_scheduler import list_makespan

if TYPE_CHECKING:
    from openautoglm.core.costs import Ranks
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.list_scheduler import ListResult

__all__ = ["Candidate", "full_search", "robust_order"]

#: List-scheduling calls of one descent of a candidate's improvement: ``REFINE_WORK // n``
#: (bounded by ``refine`` and at least 16), so that phase costs about the same on every graph
#: size; graphs up to WIDE_UP_TO tasks get twice that (two descents, then kicks).
REFINE_WORK = 40_000
#: Local-search calls on graphs with gang tasks (simulated by the Python loop).
GANG_REFINE = 32

#: The improvement runs on the best TOP_K candidates of graphs up to WIDE_UP_TO tasks (each
#: candidate also re-ranked, linear clusters added); larger graphs improve the winner only.
TOP_K = 4
WIDE_UP_TO = 500

#: Fractions of the workers the linear-clustering candidates use (graphs up to WIDE_UP_TO).
LINEAR_FRACTIONS: tuple[float, ...] = (1.0, 0.5, 0.25)

#: Candidates placed by HEFT as if transfers took this many times longer (then simulated with
#: the real network): placements that keep more data local.
COMM_SCALES: tuple[float, ...] = (2.0, 4.0, 8.0)

#: Most alternations of placement moves and re-ranking in one descent.
IMPROVE_ROUNDS = 8

#: (min_ratio, balance, fraction of workers) of the placement-cluster candidates.
CLUSTER_CANDIDATES: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.0, 1.0),
    (0.0, 1.5, 1.0),
    (1.0, 1.0, 1.0),
    (0.0, 1.0, 0.5),
    (0.0, 1.0, 0.25),
)


class Candidate(NamedTuple):
    """A simulated candidate: its plan and the priority, shares and pins that produced it."""

    result: ListResult
    priority: np.ndarray
    shares: np.ndarray | None
    pins: np.ndarray | None


def full_search(graph: TaskGraph, cluster: Cluster, priority: np.ndarray, share: np.ndarray,
                r: Ranks, full: bool, samples: int, sigma: float, refine: int, seed: int,
                iterate: int) -> tuple[dict[str, float], str, Candidate]:
    """Simulate the candidates, improve the best few, keep the winner (module docstring).

    Args:
        graph: The task graph.
        cluster: The cluster.
        priority: The learned priority per task.
        share: The learned share per task.
        r: The graph's ranks on this cluster.
        full: Every candidate and the improvement (else learned, heft and serial only).
        samples: Priorities sampled around the learned one (0: none).
        sigma: Log-normal scale of the samples.
        refine: Most list-scheduling calls of one descent of an improvement (0: none).
        seed: Seed of the samples and of the kicks.
        iterate: Rounds of re-ranking applied to every candidate (0: none).

    Returns:
        ``(makespans by candidate name, the winner's name, the winner)``.
    """
    mode = "all" if full else "some"
    found = _candidates(graph, cluster, priority, share, r, mode, samples, sigma, seed)
    # Small graphs get the wider search: every candidate re-ranked, the best few improved.
    wide = len(graph) <= WIDE_UP_TO
    if mode == "all" and iterate > 0 and wide:
        for name, cand in list(found.items()):
            r2, p2, pins2 = iterate_ranks(graph, cluster, cand.result, cand.priority,
                                          cand.shares, cand.pins, iterate)
            if r2.makespan < cand.result.makespan:
                found[f"{name}+iterated"] = Candidate(r2, p2, cand.shares, pins2)
    makespans = {k: v.result.makespan for k, v in found.items()}
    chosen = min(makespans, key=makespans.__getitem__)
    best = found[chosen]
    if mode == "all" and cluster.n_workers > 1:
        top = sorted(makespans, key=makespans.__getitem__)[:TOP_K if wide else 1]
        for name in top:
            nm, cand = _improve(graph, cluster, name, found[name], makespans, refine, seed)
            if better(cand.result, best.result) or name == chosen:
                chosen, best = nm, cand
    if mode == "all" and cluster.n_workers > 1:
        chosen, best = robust_order(graph, cluster, chosen, best, makespans)
    return makespans, chosen, best


def robust_order(graph: TaskGraph, cluster: Cluster, chosen: str, best: Candidate,
                 makespans: dict[str, float]) -> tuple[str, Candidate]:
    """The winner's workers, each one's tasks longest remaining path first, if no worse.

    Costs are estimates. The search may pack a worker short task first, which ties in the
    simulator (its tie-break prefers the smaller total finish time) but starts a long task
    late, so it ends alone when it runs longer than its hint; measured on AutoTrainer waves.
    Ranking by the plan's realised upward rank with every task kept on its worker puts
    long paths first; kept when its makespan is no worse (up to 1e-12 relative).
    """
    pins = np.asarray(best.result.worker, dtype=np.int64)
    prio = realised_rank(graph, cluster, best.result)
    res = list_makespan(graph, cluster, prio, shares=best.shares, workers=pins)
    if res.makespan > best.result.makespan * (1 + 1e-12):
        return chosen, best
    makespans[f"{chosen}+ranked"] = res.makespan
    return f"{chosen}+ranked", Candidate(res, prio, best.shares, pins)


def _improve(graph: TaskGraph, cluster: Cluster, chosen: str, best: Candidate,
             makespans: dict[str, float], refine: int, seed: int) -> tuple[str, Candidate]:
    """Iterated local search (placement moves, re-ranking, kicks) on one candidate."""
    # A fixed budget of list-scheduling work: fewer simulations on larger graphs. Small
    # graphs get both descents (each with that budget), larger ones the restarting one.
    budget = min(refine, max(16, REFINE_WORK // max(len(graph), 1)))
    if graph.gang.max(initial=1) > 1:  # gangs simulate in Python (~100x slower): fewer calls
        budget = min(budget, GANG_REFINE)
    if budget <= 0:
        return chosen, best
    wide = len(graph) <= WIDE_UP_TO
    res, prio, pins, _ = iterated_search(graph, cluster, best.result, best.priority,
                                         best.shares, best.pins, budget * (2 if wide else 1),
                                         seed=seed, rounds=IMPROVE_ROUNDS,
                                         sweep=None if wide else False)
    if not better(res, best.result):
        return chosen, best
    makespans[f"{chosen}+search"] = res.makespan
    return f"{chosen}+search", Candidate(res, prio, best.shares, pins)


def _candidates(graph: TaskGraph, cluster: Cluster, priority: np.ndarray, share: np.ndarray,
                r: Ranks, mode: str, samples: int, sigma: float, seed: int
                ) -> dict[str, Candidate]:
    """Simulate every candidate plan (makespan only): name -> candidate."""
    found: dict[str, Candidate] = {}

    def run(name: str, prio: np.ndarray, shares: np.ndarray | None,
            workers: np.ndarray | None = None) -> None:
        res = list_makespan(graph, cluster, prio, shares=shares, workers=workers)
        found[name] = Candidate(res, prio, shares, workers)

    run("learned", priority, share)
    run("heft", r.rank_u, None)
    if int(np.max(cluster.cores)) > 1:
        run("heft+shares", r.rank_u, share)
    fastest = int(np.argmin(np.asarray(graph.exec_time(cluster)).sum(axis=0)))
    run("serial", r.rank_u, None, np.full(len(graph), fastest, dtype=np.int64))
    if mode != "all":
        return found
    if cluster.n_workers > 1 and len(graph.edge_src) and np.isfinite(cluster.bandwidth):
        # Placements planned as if the network were slower, then simulated as it is.
        for alpha in COMM_SCALES:
            slow = Cluster(cluster.speeds, cluster.bandwidth / alpha, cluster.cores)
            pins = list_makespan(graph, slow, r.rank_u).worker
            run(f"heft(comm x{alpha:g})", r.rank_u, None, pins)
    if cluster.n_workers > 1 and len(graph.edge_src):
        seen: set[bytes] = set()
        heaviest_first = np.argsort(-r.comm, kind="stable")
        for min_ratio, balance, fraction in CLUSTER_CANDIDATES:
            pins = cluster_pins(graph, cluster, r, min_ratio, balance, fraction, heaviest_first)
            key = pins.tobytes()
            if key in seen or (pins < 0).all():
                continue
            seen.add(key)
            run(f"clusters(r={min_ratio:g},b={balance:g},k={fraction:g})", priority, share, pins)
    if cluster.n_workers > 1 and len(graph.edge_src) and len(graph) <= WIDE_UP_TO:
        for fraction in LINEAR_FRACTIONS:
            pins = linear_pins(graph, cluster, r, fraction)
            run(f"linear(k={fraction:g})", r.rank_u, None, pins)
    if samples > 0:
        # Sampling around the learned priority (the policy's stochastic decoding), seeded.
        rng = np.random.default_rng(seed)
        lo, hi = float(priority.min()), float(priority.max())
        positive = priority - lo + 0.01 * (hi - lo) + 1e-12
        best: Candidate | None = None
        for _ in range(samples):
            q = positive * np.exp(sigma * rng.standard_normal(len(graph)))
            res = list_makespan(graph, cluster, q, shares=share)
            if best is None or res.makespan < best.result.makespan:
                best = Candidate(res, q, share, None)
        if best is not None:
            found[f"sampled({samples})"] = best
    return found
