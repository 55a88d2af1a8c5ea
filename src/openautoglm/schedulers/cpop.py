"""CPOP: Critical-Path-on-a-Processor (Topcuoglu, Hariri and Wu, IEEE TPDS 2002).

::

      a*           priority = rank_u + rank_d; the tasks whose priority equals the entry
     / \\           task's (marked *) form the critical path. They all go to the one worker
    b*  c          that runs them fastest in total; every other task goes where it finishes
     \\ /           earliest (with insertion). Ready tasks are taken highest priority first.
      d*

The paper's example (Fig. 2) gives 86: ``tests/schedulers/test_schedulers.py::test_cpop_paper_example``.
"""
from __future__ import annotations

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import downward_rank, mean_costs, upward_rank
from openautoglm.core.graph import TaskGraph
from openautoglm.schedulers.base import Scheduler
from openautoglm.simulate.list_scheduler import list_schedule
from openautoglm.simulate.schedule import Schedule

__all__ = ["CPOPScheduler", "critical_path_tasks"]


def critical_path_tasks(graph: TaskGraph, priority: np.ndarray, rank_u: np.ndarray) -> np.ndarray:
    """Indices of one critical path: from the top-priority entry, follow a child of equal priority.

    Args:
        graph: the tasks.
        priority: ``rank_u + rank_d`` per task.
        rank_u: upward rank per task (used to break ties toward the longer tail).
    """
    n = len(graph)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    entries = np.flatnonzero(np.diff(graph.pred_ptr) == 0)
    cp = float(priority[entries].max())
    tol = 1e-9 * max(1.0, abs(cp))
    i = int(entries[np.argmax(priority[entries])])
    path = [i]
    while graph.succ_ptr[i + 1] > graph.succ_ptr[i]:
        kids = graph.succ_idx[graph.succ_ptr[i]:graph.succ_ptr[i + 1]]
        on = kids[np.abs(priority[kids] - cp) <= tol]
        if len(on) == 0:
            break
        i = int(on[np.argmax(rank_u[on])])
        path.append(i)
    return np.asarray(path, dtype=np.int64)


class CPOPScheduler(Scheduler):
    """Critical-path tasks on the critical-path processor, the rest by earliest finish time.

    Source: Topcuoglu et al., IEEE TPDS 2002, doi:10.1109/71.993206

    Args:
        insertion: fill idle gaps (default True).
    """

    name = "cpop"

    def __init__(self, insertion: bool = True) -> None:
        self.insertion = insertion

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster``; deterministic."""
        wbar, cbar = mean_costs(graph, cluster)
        rank_u = upward_rank(graph, wbar, cbar)
        priority = rank_u + downward_rank(graph, wbar, cbar)
        path = critical_path_tasks(graph, priority, rank_u)
        workers = np.full(len(graph), -1, dtype=np.int64)
        if len(path):
            # The processor that minimises the critical path's total run time.
            workers[path] = int(graph.exec_time(cluster)[path].sum(axis=0).argmin())
        return list_schedule(graph, cluster, priority, workers=workers, insertion=self.insertion)
