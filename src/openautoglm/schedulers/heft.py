"""HEFT: Heterogeneous Earliest Finish Time (Topcuoglu, Hariri and Wu, IEEE TPDS 2002).

::

      a            1. priority = upward rank (rank_u): mean run time plus the longest
     / \\              mean-cost path to an exit, transfers included.
    b   c          2. highest rank first, each task on the worker where it finishes
     \\ /              earliest, filling idle gaps (the insertion policy).
      d

Higher rank runs earlier; a parent always outranks its children (costs > 0), so the rank order is
a topological order. The paper's own 10-task example (Fig. 2) gives a makespan of 80:
``tests/schedulers/test_schedulers.py::test_heft_paper_example``.
"""
from __future__ import annotations

from typing import Any

from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import mean_costs, upward_rank
from openautoglm.core.graph import TaskGraph
from openautoglm.schedulers.base import Scheduler
from openautoglm.simulate.list_scheduler import list_schedule
from openautoglm.simulate.schedule import Schedule

__all__ = ["HEFTScheduler"]


class HEFTScheduler(Scheduler):
    """Upward-rank priority, earliest-finish-time placement with insertion.

    Source: Topcuoglu et al., IEEE TPDS 2002, doi:10.1109/71.993206

    Args:
        insertion: fill idle gaps (the paper's policy; default True).
        cores, shares: optional per-task core counts or worker shares, passed to
            :func:`~openautoglm.simulate.list_schedule` (default: one core per task).
        comm_factor: multiplies ``size / bandwidth`` in the ranks. 1 (default) is the paper's
            mean over pairs of different workers. anrg-saga 2.0.2 averages over its undirected
            network edges including self links, i.e. ``(W - 1) / (W + 1)`` for W workers; pass
            that to reproduce saga's HeftScheduler exactly (``tests/integration/test_saga_crosscheck.py``).
    """

    name = "heft"

    def __init__(self, insertion: bool = True, cores: Any = None, shares: Any = None,
                 comm_factor: float = 1.0) -> None:
        if not comm_factor >= 0:
            raise ValueError(f"comm_factor must be >= 0, got {comm_factor!r}")
        self.comm_factor = float(comm_factor)
        self.insertion = insertion
        self.cores = cores
        self.shares = shares

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster``; deterministic."""
        wbar, cbar = mean_costs(graph, cluster)
        rank = upward_rank(graph, wbar, cbar * self.comm_factor)
        return list_schedule(graph, cluster, rank, cores=self.cores, shares=self.shares,
                             insertion=self.insertion)
