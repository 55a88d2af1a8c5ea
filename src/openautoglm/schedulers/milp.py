"""The exact optimum makespan of a small DAG (policy ``"optimal"``), for measuring heuristics.

::

    graph, cluster --HEFT, replayed--> meets the lower bound? -- yes --> that plan (no solver)
                                             | no
                                             v
          the disjunctive MILP (milp_formulation.solve_makespan_milp, HiGHS), big-M from HEFT
                                             |
          its workers and interval order (midpoints) --replay--> every task as early as possible

The formulation (variables, constraints, symmetry breaking, scaling) is explained in
``milp_formulation.py``. The solution is turned into a :class:`~openautoglm.simulate.Schedule`
by :func:`replay`, which can only shorten it, so the result is exact for the simulator's own
arithmetic. HiGHS proves optimality within seconds for n <= 12 and a few workers; the time
grows exponentially beyond that, so larger graphs are refused.
Tests: ``tests/schedulers/test_milp.py`` (brute-force enumeration on tiny DAGs, HEFT paper example).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from openautoglm.core.costs import transfer_time
from openautoglm.schedulers.base import Scheduler, schedule
from openautoglm.schedulers.milp_formulation import MILPNoSolutionError, MILPResult, solve_makespan_milp
from openautoglm.simulate.schedule import Schedule, lower_bound

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph

__all__ = ["MILPScheduler", "replay"]


def replay(p: np.ndarray, edges: list[tuple[int, int, float]], worker: np.ndarray,
           order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start every task as early as its worker and its data allow, in ``order_key`` order.

    Tasks are taken ready-first (all parents placed), smallest ``order_key`` first, and appended
    to their worker. With an ``order_key`` that follows each worker's sequence and every edge in a
    feasible schedule (the midpoints of its intervals do), no task starts later than it did there
    (induction over the order), so the makespan can only shrink.

    Args:
        p: (n, W) run times.
        edges: ``(parent, child, transfer)`` with transfer paid across workers.
        worker: (n,) worker of each task.
        order_key: (n,) sort key, e.g. the midpoints of the planned intervals.

    Returns:
        ``(start, finish)`` arrays.

    Example:
        >>> p = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 1.0]])
        >>> replay(p, [(0, 2, 5.0), (1, 2, 5.0)], np.array([0, 1, 0]), np.array([0.0, 0.0, 9.0]))
        (array([0., 0., 8.]), array([2., 3., 9.]))
    """
    n = p.shape[0]
    parents: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for u, v, c in edges:
        parents[v].append((u, c))
    start, finish = np.zeros(n), np.full(n, np.nan)
    free = np.zeros(p.shape[1])
    remaining = sorted(range(n), key=lambda i: (order_key[i], i))
    while remaining:
        i = next(i for i in remaining if all(not np.isnan(finish[u]) for u, _ in parents[i]))
        remaining.remove(i)
        w = worker[i]
        ready = max([finish[u] + (c if worker[u] != w else 0.0) for u, c in parents[i]], default=0.0)
        start[i] = max(free[w], ready)
        finish[i] = free[w] = start[i] + p[i, w]
    return start, finish


class MILPScheduler(Scheduler):
    """Exact minimum makespan for small DAGs (policy ``"optimal"``), for measuring heuristics.

    Solves the classic model (one core per worker, per-worker run times including ``costs``,
    communication ``size / bandwidth`` between different workers) to optimality with
    ``scipy.optimize.milp``. Source: the disjunctive formulation of scheduling with
    communication delays, e.g. Davidović et al., "Mathematical programming-based approach to
    scheduling of communicating tasks", 2004.

    Args:
        max_tasks: Refuse graphs with more tasks than this (solve time is exponential).
        time_limit: Seconds HiGHS may spend per graph.
        allow_suboptimal: Return the best schedule found when the time limit stops the proof
            (``last_result.optimal`` is then False) instead of raising.

    Attributes:
        last_result: The :class:`MILPResult` of the latest call (solver makespan and bound).

    Example:
        >>> import networkx as nx
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.graph import TaskGraph
        >>> G = nx.DiGraph(); G.add_nodes_from(["a", "b", "c"], cost=2.0)
        >>> G.add_edge("a", "b", size=3.0); G.add_edge("a", "c", size=3.0)
        >>> s = MILPScheduler().schedule(TaskGraph.from_networkx(G), Cluster.homogeneous(2))
        >>> s.makespan   # all on one worker: 6; moving b or c pays the transfer of 3
        6.0
    """

    name = "optimal"

    def __init__(self, max_tasks: int = 12, time_limit: float = 60.0,
                 allow_suboptimal: bool = False) -> None:
        self.max_tasks = max_tasks
        self.time_limit = time_limit
        self.allow_suboptimal = allow_suboptimal
        self.last_result: MILPResult | None = None

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """Plan ``graph`` on ``cluster`` with the least possible makespan.

        Raises:
            ValueError: More than ``max_tasks`` tasks, a worker with more than one core, or a
                gang task (several workers at once: not in this model).
            RuntimeError: The time limit stopped the solver before it proved optimality
                (unless ``allow_suboptimal``: then the best schedule found is returned, HEFT's
                when the solver found none, and ``last_result.optimal`` is False).
        """
        n = len(graph)
        if n > self.max_tasks:
            raise ValueError(
                f"MILPScheduler solves graphs of at most max_tasks={self.max_tasks} tasks exactly; "
                f"this one has {n}. Use policy='heft' (or another heuristic) for large graphs, or "
                f"MILPScheduler(max_tasks={n}) if you can wait: solve time grows exponentially")
        gangs = [graph.tasks[i] for i in (graph.gang > 1).nonzero()[0]]
        if gangs:
            raise ValueError(
                f"MILPScheduler models one worker per task; tasks {gangs[:3]!r} are gangs "
                f"(gang > 1, several workers at once). Use policy='heft' or 'gnn', which place "
                "gangs")
        if (cluster.cores != 1).any():
            raise ValueError(
                f"MILPScheduler models one core per worker (the classic model); this cluster has "
                f"cores={cluster.cores.tolist()}. Use Cluster(speeds, bandwidth, cores=1)")
        p = graph.exec_time(cluster)
        edges = [(int(u), int(v), float(transfer_time(sz, cluster)))
                 for u, v, sz in zip(graph.edge_src, graph.edge_dst, graph.edge_size)]
        heft = schedule(graph, cluster, policy="heft")
        if n == 0:
            self.last_result = MILPResult(np.zeros(0, dtype=np.int64), np.zeros(0), 0.0, 0.0,
                                          True, "empty graph")
            return heft
        # HEFT's plan replayed one task after another on each worker (exact arithmetic: the
        # timelines' 1e-9 s rounding floor let HEFT slip a 1e-12 s task beside another on one
        # core). When it meets the lower bound it is optimal, no solver needed (the solver's
        # tolerances cannot tell 1e-12 s from 0, and once called such a model infeasible).
        pl = [heft.placements[k] for k in graph.tasks]
        h_worker = np.array([w for w, _, _ in pl], dtype=np.int64)
        h_mid = np.array([(st + fi) / 2 for _, st, fi in pl], dtype=float)
        h_start, h_finish = replay(p, edges, h_worker, h_mid)
        bound = lower_bound(graph, cluster)
        if float(h_finish.max()) <= bound:
            self.last_result = MILPResult(h_worker, h_start, float(h_finish.max()), bound, True,
                                          "HEFT, replayed, meets the lower bound")
            return self._build(graph, cluster, h_worker, h_start)
        try:
            result = solve_makespan_milp(p, edges, upper_bound=heft.makespan,
                                         time_limit=self.time_limit)
        except MILPNoSolutionError as exc:
            if not self.allow_suboptimal:
                raise
            pl = [heft.placements[k] for k in graph.tasks]
            self.last_result = MILPResult(np.array([w for w, _, _ in pl]),
                                          np.array([st for _, st, _ in pl]), heft.makespan,
                                          exc.bound, False, str(exc))
            return heft
        self.last_result = result
        if not result.optimal and not self.allow_suboptimal:
            raise RuntimeError(
                f"MILPScheduler: no optimality proof within time_limit={self.time_limit}s "
                f"(best {result.makespan:.6g}, bound {result.bound:.6g}); raise time_limit or "
                "pass allow_suboptimal=True")
        # Order by the midpoint of each solver interval: on one worker the intervals do not
        # overlap, so midpoints follow the worker's sequence even where a zero-length task shares
        # its start with a long one (ordering by start alone would put it behind the long one),
        # and they stay ordered under the solver's small rounding errors.
        mid = result.start + p[np.arange(n), result.worker] / 2
        start, _ = replay(p, edges, result.worker, mid)
        return self._build(graph, cluster, result.worker, start)

    @staticmethod
    def _build(graph: TaskGraph, cluster: Cluster, worker: np.ndarray, start: np.ndarray
               ) -> Schedule:
        s = Schedule(graph, cluster)
        for i in sorted(range(len(graph)), key=lambda i: (start[i], i)):
            s.add(graph.tasks[i], int(worker[i]), float(start[i]))
        return s

