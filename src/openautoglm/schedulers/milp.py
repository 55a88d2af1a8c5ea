"""The exact optimum makespan of a small DAG, as a mixed-integer linear program.

Cast of characters (``n`` tasks, ``W`` workers, classic model: one core per worker):

- ``p[i, w]``: run time of task ``i`` on worker ``w`` (``g.exec_time(cluster)``).
- ``c[i, j]``: transfer time of edge ``i -> j`` between two different workers
  (``size / bandwidth``); free on the same worker.
- ``x[i, w]`` (binary): task ``i`` runs on worker ``w``. ``s[i]``: its start. ``C``: makespan.
- ``y[i, j]`` (binary, one per pair of tasks that no path orders): ``i`` runs before ``j``.

Disjunctive big-M formulation::

    minimise C
    sum_w x[i, w] = 1                                         every task on one worker
    s[j] >= s[i] + sum_v p[i, v] x[i, v] + c[i, j] (x[i, w] - x[j, w])   edge i -> j, every w
    s[j] >= s[i] + p[i, w] - M (1 - y) - M (2 - x[i, w] - x[j, w])       unordered i, j on w
    s[i] >= s[j] + p[j, w] - M y       - M (2 - x[i, w] - x[j, w])
    C >= s[i] + sum_v p[i, v] x[i, v] + tail[i]
    C >= sum_i p[i, w] x[i, w]                                one core per worker

For an edge, ``x[i, w] - x[j, w]`` is 1 for the parent's worker exactly when the child runs
elsewhere, so the transfer is paid only then. ``M`` is an upper bound on any makespan worth
considering (the best of HEFT and "everything on one worker"), and ``C <= M``. Identical workers
are interchangeable, so the ``k``-th of a group may only host tasks with index ``>= k``
(symmetry breaking). The solution is turned into a :class:`~openautoglm.simulate.Schedule` by
replaying its worker assignment and interval order (midpoints) with every task as early as
possible, which can only shorten it, so the result is exact for the simulator's own arithmetic.

HiGHS (via ``scipy.optimize.milp``) proves optimality within seconds for n <= 12 and a few
workers; the time grows exponentially beyond that, so larger graphs are refused.
Tests: ``tests/schedulers/test_milp.py`` (brute-force enumeration on tiny DAGs, HEFT paper example).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from openautoglm.core.costs import transfer_time
from openautoglm.schedulers.base import Scheduler, schedule
from openautoglm.simulate.schedule import Schedule, lower_bound

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph

__all__ = ["MILPScheduler", "MILPResult", "MILPNoSolutionError", "solve_makespan_milp", "replay"]


class MILPNoSolutionError(RuntimeError):
    """HiGHS stopped (time limit or numerical failure) before finding any schedule.

    Attributes:
        bound: The lower bound it had proven (``nan`` when none).
    """

    def __init__(self, message: str, bound: float) -> None:
        super().__init__(message)
        self.bound = bound


class MILPResult:
    """What the solver found: worker per task, start per task, makespan and its proof status.

    Attributes:
        worker: int array (n,), the worker of each task (in ``g.tasks`` order).
        start: float array (n,), the solver's start times.
        makespan: the solver's objective value.
        bound: the proven lower bound (equals ``makespan`` when ``optimal``).
        optimal: True when HiGHS proved optimality (within ``mip_rel_gap``).
        message: HiGHS's status message.
    """

    def __init__(self, worker: np.ndarray, start: np.ndarray, makespan: float, bound: float,
                 optimal: bool, message: str) -> None:
        self.worker, self.start, self.makespan = worker, start, makespan
        self.bound, self.optimal, self.message = bound, optimal, message

    def __repr__(self) -> str:
        return (f"MILPResult(makespan={self.makespan:.6g}, bound={self.bound:.6g}, "
                f"optimal={self.optimal})")


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


def _longest(n: int, edges: list[tuple[int, int, float]], pmin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Earliest start (head) and remaining path after the task (tail), no communication."""
    head, tail = np.zeros(n), np.zeros(n)
    children: list[list[int]] = [[] for _ in range(n)]
    parents: list[list[int]] = [[] for _ in range(n)]
    for u, v, _ in edges:
        children[u].append(v)
        parents[v].append(u)
    for i in range(n):
        head[i] = max([head[u] + pmin[u] for u in parents[i]], default=0.0)
    for i in reversed(range(n)):
        tail[i] = max([pmin[v] + tail[v] for v in children[i]], default=0.0)
    return head, tail


def _unordered_pairs(n: int, edges: list[tuple[int, int, float]]) -> list[tuple[int, int]]:
    """Pairs (i < j) with no path between them (these may overlap, on different workers)."""
    reach = np.eye(n, dtype=bool)
    children: list[list[int]] = [[] for _ in range(n)]
    for u, v, _ in edges:
        children[u].append(v)
    for i in reversed(range(n)):
        for v in children[i]:
            reach[i] |= reach[v]
    return [(i, j) for i in range(n) for j in range(i + 1, n) if not (reach[i, j] or reach[j, i])]


def solve_makespan_milp(p: np.ndarray, edges: list[tuple[int, int, float]],
                        upper_bound: float | None = None, time_limit: float = 60.0,
                        mip_rel_gap: float = 1e-7) -> MILPResult:
    """Minimise the makespan of a DAG on unrelated one-core workers with communication.

    Args:
        p: (n, W) run time of each task on each worker; tasks in topological order
            (every edge goes from a smaller to a larger index).
        edges: ``(parent, child, transfer_time)`` triples.
        upper_bound: A known feasible makespan (e.g. HEFT's); tightens big-M.
        time_limit: Seconds HiGHS may spend.
        mip_rel_gap: Relative optimality gap at which HiGHS stops.

    Returns:
        A :class:`MILPResult`.

    Raises:
        RuntimeError: When HiGHS finds no feasible solution in ``time_limit``.

    Example:
        >>> p = np.array([[2.0, 2.0], [3.0, 3.0], [1.0, 1.0]])
        >>> solve_makespan_milp(p, [(0, 2, 5.0), (1, 2, 5.0)]).makespan   # serial beats 3+5+1
        6.0
    """
    from scipy.optimize import (  # lazy: importing the package stays fast
        Bounds,
        LinearConstraint,
        milp,
    )
    from scipy.sparse import coo_array

    n, W = p.shape
    if any(u >= v for u, v, _ in edges):
        raise ValueError("tasks must be in topological order: every edge (u, v) needs u < v")
    serial = float(p.sum(axis=0).min())
    ub = serial if upper_bound is None else min(serial, float(upper_bound))
    # Solve in units of the upper bound: big-M near 1 keeps HiGHS's tolerances meaningful,
    # at every magnitude (a plan of 1e-9 s total in seconds sat inside the tolerances and was
    # declared infeasible).
    scale = ub if ub > 0 else 1.0
    p = p / scale
    edges = [(u, v, c / scale) for u, v, c in edges]
    ub = ub / scale * (1 + 1e-6) + 1e-9  # a known schedule must stay feasible despite rounding
    pmin = p.min(axis=1)
    head, tail = _longest(n, edges, pmin)
    lb = max(float((head + pmin).max()), float(pmin.sum()) / W)
    big_m = ub + float(p.max())
    pairs = _unordered_pairs(n, edges)
    # Variable layout: x (n*W) | s (n) | y (len(pairs)) | C (1)
    X, S, Y = 0, n * W, n * W + n
    CV = Y + len(pairs)
    nv = CV + 1
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add_row(coef: dict[int, float], lower: float, upper: float = math.inf) -> None:
        r = len(lo)
        for col, val in coef.items():
            rows.append(r)
            cols.append(col)
            vals.append(val)
        lo.append(lower)
        hi.append(upper)

    def x(i: int, w: int) -> int:
        return X + i * W + w

    for i in range(n):
        add_row({x(i, w): 1.0 for w in range(W)}, 1.0, 1.0)
    for u, v, c in edges:
        for w in (range(W) if c > 0 else range(1)):
            coef = {S + v: 1.0, S + u: -1.0}
            for vw in range(W):
                coef[x(u, vw)] = -p[u, vw]
            if c > 0:
                coef[x(u, w)] = coef[x(u, w)] - c
                coef[x(v, w)] = coef.get(x(v, w), 0.0) + c
            add_row(coef, 0.0)
    for k, (i, j) in enumerate(pairs):
        for w in range(W):
            # i before j on w: s_j - s_i - p_iw - M y - M x_iw - M x_jw >= -3M
            add_row({S + j: 1.0, S + i: -1.0, Y + k: -big_m, x(i, w): -big_m, x(j, w): -big_m},
                    p[i, w] - 3 * big_m)
            # j before i on w: s_i - s_j - p_jw + M y - M x_iw - M x_jw >= -2M
            add_row({S + i: 1.0, S + j: -1.0, Y + k: big_m, x(i, w): -big_m, x(j, w): -big_m},
                    p[j, w] - 2 * big_m)
    for i in range(n):
        coef = {CV: 1.0, S + i: -1.0}
        for w in range(W):
            coef[x(i, w)] = -p[i, w]
        add_row(coef, float(tail[i]))
    for w in range(W):
        # One core per worker: the work it hosts fits before the makespan (a strong LP cut).
        coef = {CV: 1.0}
        for i in range(n):
            coef[x(i, w)] = -p[i, w]
        add_row(coef, 0.0)
    x_hi = np.ones(n * W)
    # Symmetry breaking: the k-th worker of a group of identical ones hosts tasks i >= k only.
    groups: dict[bytes, list[int]] = {}
    for w in range(W):
        groups.setdefault(p[:, w].tobytes(), []).append(w)
    for members in groups.values():
        for k, w in enumerate(members):
            for i in range(min(k, n)):
                x_hi[i * W + w] = 0.0
    lower = np.concatenate([np.zeros(n * W), head, np.zeros(len(pairs)), [lb]])
    upper = np.concatenate([x_hi, np.full(n, ub), np.ones(len(pairs)), [ub]])
    integrality = np.concatenate([np.ones(n * W), np.zeros(n), np.ones(len(pairs)), [0]])
    objective = np.zeros(nv)
    objective[CV] = 1.0
    A = coo_array((vals, (rows, cols)), shape=(len(lo), nv)).tocsr()
    constraints = LinearConstraint(A, np.array(lo), np.array(hi))
    options = {"time_limit": float(time_limit), "mip_rel_gap": mip_rel_gap}
    res = milp(objective, integrality=integrality, bounds=Bounds(lower, upper),
               constraints=constraints, options=options)
    if res.x is None and res.status in (2, 4):
        # HiGHS occasionally rejects its own optimum over a 1e-6 infeasibility after presolve
        # (status 4), or calls a feasible model infeasible (status 2: a known schedule, the
        # upper bound's, is feasible by construction) when task lengths differ by 1e3 or more.
        res = milp(objective, integrality=integrality, bounds=Bounds(lower, upper),
                   constraints=constraints, options={**options, "presolve": False})
    if res.x is None:
        dual = getattr(res, "mip_dual_bound", None)
        raise MILPNoSolutionError(
            f"the MILP found no schedule within time_limit={time_limit}s ({res.message}); raise "
            "time_limit or use a smaller graph", float(dual) * scale if dual is not None else math.nan)
    worker = res.x[X:S].reshape(n, W).argmax(axis=1)
    bound = float(getattr(res, "mip_dual_bound", None) or res.fun)
    return MILPResult(worker, res.x[S:Y] * scale, float(res.fun) * scale, bound * scale,
                      res.status == 0, str(res.message))


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

