"""Random: a seeded random priority among ready tasks; random or earliest-finish placement.

::

    ready {b, c, d}  ->  pick by a random priority drawn once per task (seeded), then
                         placement="eft" (default): the worker where it finishes earliest;
                         placement="random": a uniformly random worker (append, no insertion).

A floor for comparisons: any policy worth its cost beats it.
"""
from __future__ import annotations

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph
from openautoglm.schedulers.base import Scheduler
from openautoglm.simulate.list_scheduler import list_schedule
from openautoglm.simulate.schedule import Schedule

__all__ = ["RandomScheduler"]


class RandomScheduler(Scheduler):
    """Random priority list scheduling, deterministic for a given seed.

    Source: the random-priority baseline of Canon et al., "Comparative evaluation of the
    robustness of DAG scheduling heuristics", CoreGRID 2008, doi:10.1007/978-0-387-09457-1_7.

    Args:
        seed: random seed (default 0); the same seed gives the same schedule.
        placement: ``"eft"`` (earliest finish, with insertion) or ``"random"`` (a random worker).
    """

    name = "random"

    def __init__(self, seed: int | None = 0, placement: str = "eft") -> None:
        if placement not in ("eft", "random"):
            raise ValueError(f"placement must be 'eft' or 'random', got {placement!r}")
        self.seed = seed
        self.placement = placement

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster``."""
        rng = np.random.default_rng(self.seed)
        priority = rng.random(len(graph))
        if self.placement == "eft":
            return list_schedule(graph, cluster, priority, insertion=True)
        workers = rng.integers(cluster.n_workers, size=len(graph))
        return list_schedule(graph, cluster, priority, workers=workers, insertion=False)
