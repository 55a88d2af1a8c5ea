"""No-learning baseline: the best of K randomly perturbed HEFT rankings.

Every sample multiplies each task's upward rank by ``exp(sigma * N(0, 1))`` and hands the
result to the one list scheduler (:func:`openautoglm.simulate.list_schedule`); the sample with
the smallest simulated makespan wins. Sample 0 is HEFT's own ranking, so the search is never
worse than HEFT. The learned scheduler is trained to imitate the winners of this search
(``openautoglm.training``) and the benchmark compares against it (``policy="heft_search"``).

::

    rank_u ──> rank_u * exp(sigma * z_k), k = 0..K-1 ──> list_schedule ──> min makespan

:func:`refine_placement` is the other search the learned scheduler uses: local moves of a
plan's placements (a task next to its late data, cheap-data tasks to idle workers), each one
checked by the same list scheduler.

Tests: ``tests/test_gnn.py`` (search never worse than HEFT, deterministic for a seed).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.features import ranks
from openautoglm.schedulers.base import Scheduler, register_scheduler
from openautoglm.simulate import list_schedule

if TYPE_CHECKING:
    from openautoglm.cluster import Cluster
    from openautoglm.graph import TaskGraph
    from openautoglm.simulate import Schedule

__all__ = ["HEFTSearchScheduler", "SearchResult", "perturbed_heft_search", "refine_placement"]


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
    best_s: Schedule | None = None
    best_p = base
    makespans = np.empty(samples)
    for k in range(samples):
        p = base if k == 0 else base * np.exp(sigma * rng.standard_normal(len(base)))
        s = list_schedule(graph, cluster, p)
        makespans[k] = s.makespan
        if best_s is None or s.makespan < best_s.makespan:
            best_s, best_p = s, p
    assert best_s is not None
    return SearchResult(best_p, best_s, makespans)


def _offload_moves(graph: TaskGraph, cluster: Cluster, schedule: Schedule, pins: np.ndarray,
                   comm_ratio: np.ndarray, limit: int = 16) -> list[tuple[int, int]]:
    """Move tasks with the least data per second of work to the least busy worker."""
    busy = np.zeros(cluster.n_workers)
    for p in schedule.placements.values():
        busy[p.worker] += p.finish - p.start
    order = np.argsort(comm_ratio, kind="stable")
    moves: list[tuple[int, int]] = []
    for idle in np.argsort(busy / cluster.speeds, kind="stable")[:2].tolist():
        moves += [(int(i), idle) for i in order[: 4 * limit] if pins[i] != idle][:limit]
    return moves



def refine_placement(graph: TaskGraph, cluster: Cluster, schedule: Schedule, priority: np.ndarray,
            shares: np.ndarray | None, budget: int) -> Schedule:
    """Local search over placements, each move checked by the list scheduler.

    Walks back from the task that finishes last; wherever a task waited for data from another
    worker, it tries that task on the sender's worker (and the sender on the task's worker);
    then it tries offloading the tasks with the least data per second of work to the least
    busy workers. Every other placement is kept (pins). Each try is one list-scheduling call;
    the first improvement is kept and the search restarts from it, until ``budget`` calls are
    spent or no move improves.

    Args:
        graph: The task graph.
        cluster: The cluster.
        schedule: The plan to improve (a :func:`~openautoglm.simulate.list_schedule` result).
        priority: The priority that produced it (reused for every try).
        shares: The shares that produced it, or ``None``.
        budget: Most list-scheduling calls to spend.

    Returns:
        The best schedule found (``schedule`` itself when no move helps).

    Example:
        >>> from openautoglm.graph import random_dag
        >>> from openautoglm.cluster import Cluster
        >>> from openautoglm.features import ranks
        >>> g, c = random_dag(40, ccr=10.0, seed=3), Cluster.homogeneous(4)
        >>> p = ranks(g, c).rank_u
        >>> s = list_schedule(g, c, p)
        >>> bool(refine_placement(g, c, s, p, None, budget=32).makespan <= s.makespan)
        True
    """
    index = graph.index
    pred_ptr, pred_idx = graph.pred_ptr, graph.pred_idx
    comm = np.asarray(graph.pred_size, dtype=np.float64) / cluster.bandwidth
    best = schedule
    spent = 0
    # Tasks whose data is cheap to move compared with their run time are offloaded first.
    w_bar = np.asarray(graph.exec_time(cluster)).mean(axis=1)
    io = (np.bincount(graph.edge_src, weights=graph.edge_size, minlength=len(graph))
          + np.bincount(graph.edge_dst, weights=graph.edge_size, minlength=len(graph)))
    comm_ratio = io / cluster.bandwidth / np.maximum(w_bar, 1e-12)
    while spent < budget:
        place = best.placements
        pins = np.fromiter((place[t].worker for t in graph.tasks), np.int64, len(graph))
        moves: list[tuple[int, int]] = []
        task = max(graph.tasks, key=lambda t: place[t].finish)
        for _ in range(64):
            i = index[task]
            w, start, _f = place[task]
            late, late_at = None, -1.0
            for e in range(pred_ptr[i], pred_ptr[i + 1]):
                j = int(pred_idx[e])
                pw, _ps, pf = place[graph.tasks[j]]
                arrive = pf + (comm[e] if pw != w else 0.0)
                if arrive > late_at:
                    late, late_at = j, arrive
            if late is None:
                break
            lw = int(pins[late])
            if lw != w and late_at >= start - 1e-9 * max(1.0, start):
                moves += [(i, lw), (late, w)]
            task = graph.tasks[late]
        moves += _offload_moves(graph, cluster, best, pins, comm_ratio)
        improved = False
        for i, w in moves:
            if spent >= budget:
                break
            trial = pins.copy()
            trial[i] = w
            spent += 1
            s = list_schedule(graph, cluster, priority, shares=shares, workers=trial)
            if s.makespan < best.makespan * (1 - 1e-12):
                best, improved = s, True
                break
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
