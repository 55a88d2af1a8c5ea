"""① The problem: what runs (:class:`TaskGraph`), where (:class:`Cluster`), at what cost.

Imports nothing else of openautoglm. ``costs`` is the cost model every stage above shares
(durations, transfers, mean costs, ranks); ``loaders`` reads WfFormat traces and draws DAGGEN
graphs.
"""
from __future__ import annotations

from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import Ranks, downward_rank, mean_costs, ranks, task_durations, upward_rank
from openautoglm.core.graph import CycleError, TaskGraph
from openautoglm.core.loaders import load_wfcommons, random_dag

__all__ = ["Cluster", "CycleError", "Ranks", "TaskGraph", "downward_rank", "load_wfcommons",
           "mean_costs", "random_dag", "ranks", "task_durations", "upward_rank"]
