"""Critical-path list scheduling: highest static bottom level first (HLFET).

::

      a  (b-level 4)     b-level = longest run-time path from the task to an exit,
     / \\                 counting mean run times only (no transfers): the classic
    b   c (3, 2)         "critical path" priority. Ready tasks are taken by b-level,
     \\ /                 each put where it finishes earliest (with insertion).
      d  (1)

Unlike HEFT it ignores communication when ranking, which is the difference a learned
scheduler is usually compared against (Jeon et al., ICLR 2023, use it as their baseline).
"""
from __future__ import annotations

from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import mean_costs, upward_rank
from openautoglm.core.graph import TaskGraph
from openautoglm.schedulers.base import Scheduler
from openautoglm.simulate.list_scheduler import list_schedule
from openautoglm.simulate.schedule import Schedule

__all__ = ["CriticalPathScheduler"]


class CriticalPathScheduler(Scheduler):
    """Highest Level First with Estimated Times: static b-level priority, EFT placement.

    Source: Adam, Chandy and Dickson, CACM 1974, doi:10.1145/361604.361619 (HLFET, as surveyed
    by Kwok and Ahmad, ACM Computing Surveys 1999, doi:10.1145/344588.344618).

    Args:
        insertion: fill idle gaps (default True).
    """

    name = "critical_path"

    def __init__(self, insertion: bool = True) -> None:
        self.insertion = insertion

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster``; deterministic."""
        wbar, _ = mean_costs(graph, cluster)
        return list_schedule(graph, cluster, upward_rank(graph, wbar), insertion=self.insertion)
