"""No-learning baseline: the best of K randomly perturbed HEFT rankings.

Every sample multiplies each task's upward rank by ``exp(sigma * N(0, 1))`` and hands the
result to the one list scheduler (:func:`openautoglm.simulate.list_schedule`); the sample with
the smallest simulated makespan wins. Sample 0 is HEFT's own ranking, so the search is never
worse than HEFT. The learned scheduler is trained to imitate the winners of this search
(``openautoglm.training``) and the benchmark compares against it (``policy="heft_search"``).

::

    rank_u ──> rank_u * exp(sigma * z_k), k = 0..K-1 ──> list_schedule ──> min makespan

:func:`refine_placement` is the other search the learned scheduler uses: local moves of a
plan's placements (a task next to its late data, a chain kept on one worker across the
heaviest cut edges, a lightly used worker emptied, cheap-data tasks to idle workers), each
one checked by the same list scheduler. :func:`iterate_ranks` is iterative list scheduling:
re-rank the tasks by the plan's realised upward rank (its own run times, transfers only
between workers) and schedule again. All of them simulate with
:func:`~openautoglm.simulate.list_makespan` (arrays, no Schedule) and build the Schedule of
the winner only.

Tests: ``tests/test_gnn.py`` (search never worse than HEFT, deterministic for a seed).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.features import ranks
from openautoglm.schedulers.base import Scheduler, register_scheduler
from openautoglm.simulate import list_makespan, list_schedule

if TYPE_CHECKING:
    from openautoglm.cluster import Cluster
    from openautoglm.graph import TaskGraph
    from openautoglm.simulate import ListResult, Schedule

__all__ = ["HEFTSearchScheduler", "SearchResult", "better", "iterate_ranks", "perturbed_heft_search",
           "realised_rank", "refine_placement"]


class SearchResult(NamedTuple):
    """The winner of a perturbed-ranking search.

    Attributes:
        priority: The winning priority vector (indexed like ``graph.tasks``).
        schedule: Its schedule.
        makespans: Makespan of every sample, sample 0 being HEFT's ranking.
    """

    priority: np.ndarray
    schedule: Schedule
    makespans: np.ndarray


def perturbed_heft_search(
    graph: TaskGraph,
    cluster: Cluster,
    samples: int = 256,
    sigma: float = 0.3,
    seed: int | None = 0,
    base: np.ndarray | None = None,
) -> SearchResult:
    """Best of ``samples`` randomly perturbed rankings under the list scheduler.

    Args:
        graph: The task graph.
        cluster: The cluster.
        samples: Number of rankings tried, HEFT's own included (>= 1).
        sigma: Log-normal perturbation scale (0 gives HEFT every time).
        seed: Random seed (the same seed gives the same result).
        base: Priority to perturb instead of HEFT's upward rank (must be positive).

    Returns:
        A :class:`SearchResult`.

    Raises:
        ValueError: If ``samples < 1``, ``sigma < 0`` or ``base`` has the wrong length.

    Example:
        >>> from openautoglm.graph import random_dag
        >>> from openautoglm.cluster import Cluster
        >>> g, c = random_dag(30, ccr=1.0, seed=1), Cluster.homogeneous(4)
        >>> res = perturbed_heft_search(g, c, samples=16, seed=0)
        >>> bool(res.schedule.makespan <= res.makespans[0])
        True
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if base is None:
        base = ranks(graph, cluster).rank_u
    base = np.asarray(base, dtype=np.float64)
    if base.shape != (len(graph),):
        raise ValueError(f"base has shape {base.shape}, expected ({len(graph)},): one value per task")
    rng = np.random.default_rng(seed)
    best_m, best_p = np.inf, base
    makespans = np.empty(samples)
    for k in range(samples):
        p = base if k == 0 else base * np.exp(sigma * rng.standard_normal(len(base)))
        makespans[k] = list_makespan(graph, cluster, p).makespan
        if makespans[k] < best_m:
            best_m, best_p = makespans[k], p
    # The samples are simulated as arrays; only the winner becomes a Schedule (same plan).
    return SearchResult(best_p, list_schedule(graph, cluster, best_p), makespans)


def _offload_moves(cluster: Cluster, plan: ListResult, order: np.ndarray,
                   limit: int = 16) -> list[tuple[int, int]]:
    """Move tasks with the least data per second of work (``order``) to the least busy worker."""
    busy = np.bincount(plan.worker, weights=plan.finish - plan.start, minlength=cluster.n_workers)
    moves: list[tuple[int, int]] = []
    for idle in np.argsort(busy / cluster.speeds, kind="stable")[:2].tolist():
        moves += [(int(i), idle) for i in order[: 4 * limit] if plan.worker[i] != idle][:limit]
    return moves


def _merge_moves(graph: TaskGraph, cluster: Cluster, plan: ListResult, limit: int = 2
                 ) -> list[tuple[np.ndarray, int]]:
    """Empty the least busy workers onto the workers they exchange the most data with."""
    W = cluster.n_workers
    wk = plan.worker
    busy = np.bincount(wk, weights=plan.finish - plan.start, minlength=W)
    used = np.flatnonzero(busy > 0)
    if len(used) < 2:
        return []
    a_w, b_w = wk[graph.edge_src], wk[graph.edge_dst]
    across = a_w != b_w
    data = np.zeros((W, W))
    np.add.at(data, (a_w[across], b_w[across]), graph.edge_size[across])
    data += data.T
    moves: list[tuple[np.ndarray, int]] = []
    for a in used[np.argsort(busy[used] / cluster.speeds[used], kind="stable")][:limit].tolist():
        tasks = np.flatnonzero(wk == a)
        others = used[used != a]
        partners = others[np.argsort(-data[a, others], kind="stable")][:2].tolist()
        idlest = int(others[np.argmin(busy[others] / cluster.speeds[others])])
        for b in dict.fromkeys(partners + [idlest]):
            moves.append((tasks, int(b)))
    return moves


def _edge_moves(graph: TaskGraph, plan: ListResult, limit: int = 16
                ) -> list[tuple[np.ndarray, int]]:
    """For the heaviest edges that cross workers, move one endpoint's local group to the other.

    A local group is a connected set of tasks joined by edges that stay on one worker (a
    chain already kept together), so a move keeps it whole.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(graph)
    wk = plan.worker
    src, dst = graph.edge_src, graph.edge_dst
    local = wk[src] == wk[dst]
    adj = coo_matrix((np.ones(int(local.sum())), (src[local], dst[local])), shape=(n, n))
    _, group = connected_components(adj, directed=False)
    cross = np.flatnonzero(~local)
    cross = cross[np.argsort(-graph.edge_size[cross], kind="stable")][:limit]
    moves: list[tuple[np.ndarray, int]] = []
    for e in cross.tolist():
        u, v = int(src[e]), int(dst[e])
        moves.append((np.flatnonzero(group == group[v]), int(wk[u])))
        moves.append((np.flatnonzero(group == group[u]), int(wk[v])))
    return moves


def _chain_moves(graph: TaskGraph, cluster: Cluster, plan: ListResult, comm: np.ndarray
                 ) -> list[tuple[int, int]]:
    """Walk back from the last task along the latest data; pair each late cross-worker edge."""
    pred_ptr, pred_idx = graph.pred_ptr, graph.pred_idx
    worker, start, finish = plan.worker, plan.start, plan.finish
    moves: list[tuple[int, int]] = []
    i = int(np.argmax(finish))
    for _ in range(64):
        w, s = int(worker[i]), float(start[i])
        lo, hi = int(pred_ptr[i]), int(pred_ptr[i + 1])
        if lo == hi:
            break
        par = pred_idx[lo:hi]
        arrive = finish[par] + np.where(worker[par] != w, comm[lo:hi], 0.0)
        k = int(np.argmax(arrive))
        late, late_at = int(par[k]), float(arrive[k])
        lw = int(worker[late])
        if lw != w and late_at >= s - 1e-9 * max(1.0, s):
            moves += [(i, lw), (late, w)]
        i = late
    return moves


def better(a: ListResult, b: ListResult) -> bool:
    """Whether plan ``a`` beats ``b``: a smaller makespan, or the same makespan (never a larger
    one) and a smaller total finish time, which walks the search off makespan plateaus."""
    if a.makespan < b.makespan * (1 - 1e-12):
        return True
    return a.makespan <= b.makespan and a.finish.sum() < b.finish.sum() * (1 - 1e-9)


def refine_placement(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                     shares: np.ndarray | None, budget: int
                     ) -> tuple[ListResult, np.ndarray, int]:
    """Local search over placements, each move checked by the list scheduler.

    Moves, in this order: empty one of the two least busy workers onto a worker it exchanges
    much data with (or the idlest one); walk back from the task that finishes last and,
    wherever a task waited for data from another worker, try that task on the sender's worker
    (and the sender on the task's worker); for the heaviest edges between workers, move one
    endpoint's local group (tasks joined by same-worker edges) to the other's worker; offload
    the tasks with the least data per second of work to the least busy workers. Every other
    placement is kept (pins). Each try is one makespan-only list-scheduling call
    (:func:`~openautoglm.simulate.list_makespan`); the first move that is :func:`better`
    (a shorter makespan, or the same and a smaller total finish time) is kept and the search
    restarts from it, until ``budget`` calls are spent or no move helps.

    Args:
        graph: The task graph.
        cluster: The cluster.
        plan: The plan to improve (a :func:`~openautoglm.simulate.list_makespan` result).
        priority: The priority that produced it (reused for every try).
        shares: The shares that produced it, or ``None``.
        budget: Most list-scheduling calls to spend.

    Returns:
        ``(best plan, its pins, list-scheduling calls spent)``: its Schedule is
        ``list_schedule(graph, cluster, priority, shares=shares, workers=pins)``. When no move
        helps, ``plan`` itself and its workers (then rebuild the Schedule the way ``plan``
        was made: pinning every task may plan the gaps differently).

    Example:
        >>> from openautoglm.graph import random_dag
        >>> from openautoglm.cluster import Cluster
        >>> from openautoglm.features import ranks
        >>> g, c = random_dag(40, ccr=10.0, seed=3), Cluster.homogeneous(4)
        >>> p = ranks(g, c).rank_u
        >>> r = list_makespan(g, c, p)
        >>> best, pins, spent = refine_placement(g, c, r, p, None, budget=32)
        >>> bool(best.makespan <= r.makespan)
        True
        >>> bool(list_schedule(g, c, p, workers=pins).makespan == best.makespan)
        True
    """
    comm = np.asarray(graph.pred_size, dtype=np.float64) / cluster.bandwidth
    best = plan
    spent = 0
    # Tasks whose data is cheap to move compared with their run time are offloaded first.
    w_bar = np.asarray(graph.exec_time(cluster)).mean(axis=1)
    io = (np.bincount(graph.edge_src, weights=graph.edge_size, minlength=len(graph))
          + np.bincount(graph.edge_dst, weights=graph.edge_size, minlength=len(graph)))
    cheap_first = np.argsort(io / cluster.bandwidth / np.maximum(w_bar, 1e-12), kind="stable")
    best_pins = np.asarray(plan.worker, dtype=np.int64)
    while spent < budget:
        moves: list[tuple[object, int]] = [*_merge_moves(graph, cluster, best),
                                           *_chain_moves(graph, cluster, best, comm),
                                           *_edge_moves(graph, best),
                                           *_offload_moves(cluster, best, cheap_first)]
        improved = False
        for i, w in moves:
            if spent >= budget:
                break
            trial = best_pins.copy()
            trial[i] = w
            spent += 1
            r = list_makespan(graph, cluster, priority, shares=shares, workers=trial)
            if better(r, best):
                best, best_pins, improved = r, trial, True
                break
        if not improved:
            break
    return best, best_pins, spent


def realised_rank(graph: TaskGraph, cluster: Cluster, plan: ListResult) -> np.ndarray:
    """Upward rank of a plan as it was realised: its run times, transfers only across workers."""
    from openautoglm.schedulers.base import upward_rank

    across = plan.worker[graph.pred_idx] != np.repeat(plan.worker, np.diff(graph.pred_ptr))
    comm = np.where(across, np.asarray(graph.pred_size, dtype=np.float64) / cluster.bandwidth, 0.0)
    return upward_rank(graph, plan.finish - plan.start, comm)


def iterate_ranks(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                  shares: np.ndarray | None, pins: np.ndarray | None, rounds: int
                  ) -> tuple[ListResult, np.ndarray, np.ndarray | None]:
    """Iterative list scheduling: re-prioritise by the plan's realised upward rank.

    Each round ranks the tasks by the current best plan's own run times and transfers (zero
    between tasks on one worker) and simulates that priority with free placement and with
    the plan's workers kept; the better plan, if it improves, becomes the current one.

    Returns:
        ``(plan, priority, pins)`` of the best plan found (the input when nothing helps).
    """
    best = (plan, priority, pins)
    for _ in range(rounds):
        prio = realised_rank(graph, cluster, best[0])
        improved = False
        for trial in (None, np.asarray(best[0].worker, dtype=np.int64)):
            r = list_makespan(graph, cluster, prio, shares=shares, workers=trial)
            if r.makespan < best[0].makespan * (1 - 1e-12):
                best, improved = (r, prio, trial), True
        if not improved:
            break
    return best


class HEFTSearchScheduler(Scheduler):
    """Best of ``samples`` perturbed HEFT rankings (``policy="heft_search"``).

    Args:
        samples: Rankings tried per graph (HEFT's own included).
        sigma: Log-normal perturbation scale.
        seed: Random seed.

    Source: the no-learning baseline of issue 3; perturbation of HEFT's upward rank
    (Topcuoglu et al., IEEE TPDS 2002, doi:10.1109/71.993206) under one list scheduler.
    """

    name = "heft_search"

    def __init__(self, samples: int = 256, sigma: float = 0.3, seed: int | None = 0) -> None:
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        self.samples = int(samples)
        self.sigma = float(sigma)
        self.seed = 0 if seed is None else seed

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Run the search and return the best schedule found."""
        return perturbed_heft_search(graph, cluster, self.samples, self.sigma, self.seed).schedule


register_scheduler("heft_search", HEFTSearchScheduler)
