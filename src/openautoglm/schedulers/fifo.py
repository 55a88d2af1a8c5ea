"""FIFO: tasks in topological (submission) order, each appended where it finishes earliest.

::

    a -> b -> c      order = the graph's fixed topological order (``graph.tasks``), what a
      \\-> d          plain executor does with no cost model; placement is earliest finish
                     time, appended after the worker's last task (no gap filling).
"""
from __future__ import annotations

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph
from openautoglm.schedulers.base import Scheduler
from openautoglm.simulate.list_scheduler import list_schedule
from openautoglm.simulate.schedule import Schedule

__all__ = ["FIFOScheduler"]


class FIFOScheduler(Scheduler):
    """Topological order, earliest-finish-time placement, no insertion.

    Source: the list-scheduling baseline of Graham, Bell System Technical Journal 1966,
    doi:10.1002/j.1538-7305.1966.tb01709.x (tasks in a fixed list order, first free machine).

    Args:
        insertion: fill idle gaps (default False: append only).
    """

    name = "fifo"

    def __init__(self, insertion: bool = False) -> None:
        self.insertion = insertion

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster``; deterministic."""
        priority = -np.arange(len(graph), dtype=np.float64)
        return list_schedule(graph, cluster, priority, insertion=self.insertion)
