"""Local search over a simulated plan: placement moves, re-ranking, kicks.

:func:`refine_placement` tries local moves of a plan's placements (``moves.py``: a task next
to its late data, critical-path tasks onto their parents' workers, a chain or local group kept
on one worker across the heaviest cut edges, a lightly used worker emptied, cheap-data tasks to
idle workers), each one checked by the same list scheduler. :func:`iterate_ranks` is iterative list scheduling: re-rank the tasks by the
plan's realised upward rank (its own run times, transfers only between workers) and schedule
again. :func:`iterated_search` strings them together within a budget of simulations:
descents of placement moves and re-ranking, then seeded kicks of the realised rank::

    plan ──descent (moves <-> re-rank)──> local optimum ──kick: rank * exp(sigma * z)──┐
                 ^                                                                    │
                 └────── re-rank, refine; keep when better ◄──────────────────────────┘

All of them simulate with :func:`~openautoglm.simulate.list_makespan` or its
:class:`~openautoglm.simulate.ListEvaluator` (arrays, no Schedule) and build the Schedule of
the winner only.

Tests: ``tests/schedulers/gnn/test_gnn.py`` (search never worse than HEFT, deterministic for a seed),
``tests/schedulers/gnn/test_local_search.py`` (the evaluator, the iterated search).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from openautoglm.core.costs import transfer_time, upward_rank
from openautoglm.schedulers.gnn.moves import offload_order, placement_moves
from openautoglm.simulate.list_scheduler import ListEvaluator

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.list_scheduler import ListResult

__all__ = ["better", "iterate_ranks", "iterated_search", "realised_rank", "refine_placement"]


def better(a: ListResult, b: ListResult) -> bool:
    """Whether plan ``a`` beats ``b``: a smaller makespan, or the same makespan (never a larger
    one) and a smaller total finish time, which walks the search off makespan plateaus."""
    if a.makespan < b.makespan * (1 - 1e-12):
        return True
    return a.makespan <= b.makespan and a.finish.sum() < b.finish.sum() * (1 - 1e-9)


def refine_placement(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                     shares: np.ndarray | None, budget: int,
                     evaluate: ListEvaluator | None = None, sweep: bool = False,
                     edge_score: np.ndarray | None = None
                     ) -> tuple[ListResult, np.ndarray, int]:
    """Local search over placements, each move checked by the list scheduler.

    The moves are :func:`~openautoglm.schedulers.gnn.moves.placement_moves` (data next to
    where it waits, critical-path tasks onto their parents' workers, local groups and paths
    across heavy cut edges, emptying a lightly used worker, offloading); every other placement
    is kept (pins). Each try is one makespan-only list-scheduling call; a move that is
    :func:`better` (a shorter makespan, or the same and a smaller total finish time) is kept
    and the moves are listed again from the new plan (with ``sweep``, only once the list is
    done), until ``budget`` calls are spent or a whole list finds nothing.

    Args:
        graph: The task graph.
        cluster: The cluster.
        plan: The plan to improve (a :func:`~openautoglm.simulate.list_makespan` result).
        priority: The priority that produced it (reused for every try).
        shares: The shares that produced it, or ``None``.
        budget: Most list-scheduling calls to spend.
        evaluate: A :class:`~openautoglm.simulate.ListEvaluator` of the graph with these shares
            (made here when ``None``).
        sweep: Go on down the list after an accepted move (moves listed from the older plan)
            instead of listing them again from the new one.
        edge_score: Order of the cut edges the group and path moves try, per edge (graph
            edge order, highest first; e.g. the learned co-location probability times the
            transfer time); ``None``: heaviest data first.

    Returns:
        ``(best plan, its pins, list-scheduling calls spent)``: its Schedule is
        ``list_schedule(graph, cluster, priority, shares=shares, workers=pins)``. When no move
        helps, ``plan`` itself and its workers (then rebuild the Schedule the way ``plan``
        was made: pinning every task may plan the gaps differently).

    Example:
        >>> from openautoglm.core.loaders import random_dag
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> from openautoglm.simulate.list_scheduler import list_makespan, list_schedule
        >>> g, c = random_dag(40, ccr=10.0, seed=3), Cluster.homogeneous(4)
        >>> p = ranks(g, c).rank_u
        >>> r = list_makespan(g, c, p)
        >>> best, pins, spent = refine_placement(g, c, r, p, None, budget=32)
        >>> bool(best.makespan <= r.makespan)
        True
        >>> bool(list_schedule(g, c, p, workers=pins).makespan == best.makespan)
        True
    """
    ev = evaluate if evaluate is not None else ListEvaluator(graph, cluster, shares)
    prio = np.ascontiguousarray(priority, dtype=np.float64)
    comm = transfer_time(graph.pred_size, cluster)
    cheap_first = offload_order(graph, cluster)
    best, best_pins, spent = plan, np.asarray(plan.worker, dtype=np.int64), 0
    improved = True
    while improved and spent < budget:
        improved = False
        for i, w in placement_moves(graph, cluster, best, comm, cheap_first, edge_score):
            if spent >= budget:
                break
            if (best_pins[i] == w).all():
                continue  # an earlier move of this sweep already put it there
            trial = best_pins.copy()
            trial[i] = w
            spent += 1
            r = ev(prio, trial)
            if better(r, best):
                best, best_pins, improved = r, trial, True
                if not sweep:
                    break
    return best, best_pins, spent


def realised_rank(graph: TaskGraph, cluster: Cluster, plan: ListResult) -> np.ndarray:
    """Upward rank of a plan as it was realised: its run times, transfers only across workers."""
    across = plan.worker[graph.pred_idx] != np.repeat(plan.worker, np.diff(graph.pred_ptr))
    comm = np.where(across, transfer_time(graph.pred_size, cluster), 0.0)
    return upward_rank(graph, plan.finish - plan.start, comm)


def iterate_ranks(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                  shares: np.ndarray | None, pins: np.ndarray | None, rounds: int,
                  evaluate: ListEvaluator | None = None
                  ) -> tuple[ListResult, np.ndarray, np.ndarray | None]:
    """Iterative list scheduling: re-prioritise by the plan's realised upward rank.

    Each round ranks the tasks by the current best plan's own run times and transfers (zero
    between tasks on one worker) and simulates that priority with free placement and with
    the plan's workers kept; the better plan, if it improves, becomes the current one.

    Returns:
        ``(plan, priority, pins)`` of the best plan found (the input when nothing helps).
    """
    ev = evaluate if evaluate is not None else ListEvaluator(graph, cluster, shares)
    best = (plan, priority, pins)
    for _ in range(rounds):
        prio = realised_rank(graph, cluster, best[0])
        improved = False
        for trial in (None, np.asarray(best[0].worker, dtype=np.int64)):
            r = ev(prio, trial)
            if r.makespan < best[0].makespan * (1 - 1e-12):
                best, improved = (r, prio, trial), True
        if not improved:
            break
    return best


#: A plan with what produced it: (result, priority, pins or None).
_Plan = tuple["ListResult", np.ndarray, "np.ndarray | None"]


def _descend(graph: TaskGraph, cluster: Cluster, best: _Plan, shares: np.ndarray | None,
             budget: int, ev: ListEvaluator, rounds: int, sweep: bool,
             edge_score: np.ndarray | None = None) -> _Plan:
    """Placement moves alternating with re-ranking, within ``budget`` calls of ``ev``."""
    start = ev.calls

    def left() -> int:
        return budget - (ev.calls - start)

    for _ in range(rounds):
        before = best[0]
        if left() > 0:
            r, p, _ = refine_placement(graph, cluster, best[0], best[1], shares,
                                       min(left(), budget // 2), ev, sweep=sweep,
                                       edge_score=edge_score)
            if better(r, best[0]):
                best = (r, best[1], p)
        if left() > 2:
            best = iterate_ranks(graph, cluster, best[0], best[1], shares, best[2],
                                 min(4, (left() - 1) // 2), ev)
        if best[0] is before or left() <= 0:
            break
    return best


def iterated_search(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                    shares: np.ndarray | None, pins: np.ndarray | None, budget: int,
                    seed: int = 0, sigma: float = 0.2, rounds: int = 8,
                    sweep: bool | None = None, edge_score: np.ndarray | None = None
                    ) -> tuple[ListResult, np.ndarray, np.ndarray | None, int]:
    """Iterated local search over priorities and placements, within ``budget`` simulations.

    First a descent: :func:`refine_placement` (each call at most half the descent's budget)
    alternating with :func:`iterate_ranks`, up to ``rounds`` times while either improves;
    with ``sweep=None`` two descents from ``plan`` (restarting after every accepted move, and
    sweeping on), each with half the budget plus what the first left, the better kept: which
    one wins depends on the graph. Then, until the budget is spent, kicks from the best plan
    found: its realised upward rank times ``exp(sigma * N(0, 1))`` per task, simulated with
    its placements kept and with free placement (the better of the two), re-ranked by
    :func:`iterate_ranks` and, when that beats the best, refined by a short sweep of
    :func:`refine_placement`; a kick that is :func:`better` becomes the best plan. Seeded:
    the same arguments give the same plan.

    Args:
        graph: The task graph.
        cluster: The cluster.
        plan: The plan to improve (a :func:`~openautoglm.simulate.list_makespan` result).
        priority: The priority that produced it.
        shares: The shares that produced it, or ``None`` (kept for every try).
        pins: The pins that produced it, or ``None``.
        budget: Most list-scheduling calls to spend (a deterministic work budget).
        seed: Seed of the kicks.
        sigma: Log-normal scale of the kicks.
        rounds: Most alternations of placement moves and re-ranking in a descent.
        sweep: The descent's mode (see :func:`refine_placement`); ``None``: both.
        edge_score: Order of the cut edges tried by the placement moves (see
            :func:`refine_placement`; ``None``: heaviest data first).

    Returns:
        ``(plan, priority, pins, calls spent)``: its Schedule is ``list_schedule(graph,
        cluster, priority, shares=shares, workers=pins)`` (the input when nothing helps).

    Example:
        >>> from openautoglm.core.loaders import random_dag
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> from openautoglm.simulate.list_scheduler import list_makespan, list_schedule
        >>> g, c = random_dag(40, ccr=10.0, seed=3), Cluster.homogeneous(4)
        >>> p = ranks(g, c).rank_u
        >>> r = list_makespan(g, c, p)
        >>> best, prio, pins, spent = iterated_search(g, c, r, p, None, None, budget=200)
        >>> bool(best.makespan <= r.makespan) and spent <= 200
        True
        >>> bool(list_schedule(g, c, prio, workers=pins).makespan == best.makespan)
        True
    """
    ev = ListEvaluator(graph, cluster, shares)
    n = len(graph)
    start = ev.calls

    def left() -> int:
        return budget - (ev.calls - start)

    best: _Plan = (plan, priority, pins)
    modes = (False, True) if sweep is None else (sweep,)
    for k, mode in enumerate(modes):
        cap = (budget - (ev.calls - start)) // (len(modes) - k)
        found = _descend(graph, cluster, (plan, priority, pins), shares, cap, ev, rounds, mode,
                         edge_score)
        if better(found[0], best[0]):
            best = found
    rng = np.random.default_rng(seed)
    while left() > 2:
        noise = np.exp(sigma * rng.standard_normal(n))
        trial = _kick(graph, cluster, best, noise, shares, ev, left, edge_score)
        if better(trial[0], best[0]):
            best = trial
    return (*best, ev.calls - start)


def _kick(graph: TaskGraph, cluster: Cluster, best: _Plan, noise: np.ndarray,
          shares: np.ndarray | None, ev: ListEvaluator, left: Callable[[], int],
          edge_score: np.ndarray | None) -> _Plan:
    """One kick of :func:`iterated_search`: ``best``'s realised rank times ``noise``, simulated
    with its placements kept and free (the better), re-ranked, refined when it beats ``best``."""
    kicked = realised_rank(graph, cluster, best[0]) * noise
    kept = np.asarray(best[0].worker, dtype=np.int64)
    a, b = ev(kicked, kept), ev(kicked, None)
    trial: _Plan = (a, kicked, kept) if a.makespan <= b.makespan else (b, kicked, None)
    trial = iterate_ranks(graph, cluster, *trial[:2], shares, trial[2],
                          min(3, (left() - 1) // 2), ev)
    if trial[0].makespan < best[0].makespan and left() > 0:
        r, p, _ = refine_placement(graph, cluster, trial[0], trial[1], shares,
                                   min(left(), 32), ev, sweep=True, edge_score=edge_score)
        if better(r, trial[0]):
            trial = (r, trial[1], p)
    return trial

