"""Policy ``heft_search``: the best of K perturbed HEFT rankings, each list-scheduled.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.costs import ranks
from openautoglm.schedulers.base import Scheduler
from openautoglm.simulate.list_scheduler import list_makespan, list_schedule

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.schedule import Schedule

__all__ = ["HEFTSearchScheduler", "SearchResult", "perturbed_heft_search"]


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
        >>> from openautoglm.core.loaders import random_dag
        >>> from openautoglm.core.cluster import Cluster
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
