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
The policy that uses it is ``schedulers/milp.py`` (:class:`MILPScheduler`).
Tests: ``tests/schedulers/test_milp.py`` (brute-force enumeration on tiny DAGs, HEFT paper example).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MILPResult", "MILPNoSolutionError", "solve_makespan_milp"]


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
    pairs = _unordered_pairs(n, edges)
    model = _Model(p, len(pairs))
    model.constrain(edges, pairs, tail, big_m=ub + float(p.max()))
    res = model.solve(head, lb, ub, time_limit, mip_rel_gap)
    if res.x is None:
        dual = getattr(res, "mip_dual_bound", None)
        raise MILPNoSolutionError(
            f"the MILP found no schedule within time_limit={time_limit}s ({res.message}); raise "
            "time_limit or use a smaller graph", float(dual) * scale if dual is not None else math.nan)
    worker = res.x[model.X:model.S].reshape(n, W).argmax(axis=1)
    bound = float(getattr(res, "mip_dual_bound", None) or res.fun)
    return MILPResult(worker, res.x[model.S:model.Y] * scale, float(res.fun) * scale,
                      bound * scale, res.status == 0, str(res.message))


class _Model:
    """The MILP's variables and sparse constraint rows (module docstring's formulation).

    Variable layout: ``x`` (n*W binaries) | ``s`` (n starts) | ``y`` (one binary per unordered
    pair) | ``C`` (the makespan).
    """

    def __init__(self, p: np.ndarray, n_pairs: int) -> None:
        self.p = p
        self.n, self.W = p.shape
        self.X, self.S, self.Y = 0, self.n * self.W, self.n * self.W + self.n
        self.CV = self.Y + n_pairs
        self.nv = self.CV + 1
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def x(self, i: int, w: int) -> int:
        return self.X + i * self.W + w

    def add_row(self, coef: dict[int, float], lower: float, upper: float = math.inf) -> None:
        r = len(self.lo)
        for col, val in coef.items():
            self.rows.append(r)
            self.cols.append(col)
            self.vals.append(val)
        self.lo.append(lower)
        self.hi.append(upper)

    def constrain(self, edges: list[tuple[int, int, float]], pairs: list[tuple[int, int]],
                  tail: np.ndarray, big_m: float) -> None:
        """Every row: one worker per task, edges, disjunctions, makespan, per-worker work."""
        p, n, W, x, S, Y, CV = self.p, self.n, self.W, self.x, self.S, self.Y, self.CV
        add_row = self.add_row
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

    def solve(self, head: np.ndarray, lb: float, ub: float, time_limit: float,
              mip_rel_gap: float) -> Any:
        """HiGHS on the rows, with bounds ``head <= s <= ub``, ``lb <= C <= ub`` and symmetry
        breaking; retried without presolve when HiGHS rejects a model known to be feasible."""
        from scipy.optimize import (  # lazy: importing the package stays fast
            Bounds,
            LinearConstraint,
            milp,
        )
        from scipy.sparse import coo_array

        p, n, W, nv, CV = self.p, self.n, self.W, self.nv, self.CV
        n_pairs = self.CV - self.Y
        x_hi = np.ones(n * W)
        # Symmetry breaking: the k-th worker of a group of identical ones hosts tasks i >= k only.
        groups: dict[bytes, list[int]] = {}
        for w in range(W):
            groups.setdefault(p[:, w].tobytes(), []).append(w)
        for members in groups.values():
            for k, w in enumerate(members):
                for i in range(min(k, n)):
                    x_hi[i * W + w] = 0.0
        lower = np.concatenate([np.zeros(n * W), head, np.zeros(n_pairs), [lb]])
        upper = np.concatenate([x_hi, np.full(n, ub), np.ones(n_pairs), [ub]])
        integrality = np.concatenate([np.ones(n * W), np.zeros(n), np.ones(n_pairs), [0]])
        objective = np.zeros(nv)
        objective[CV] = 1.0
        A = coo_array((self.vals, (self.rows, self.cols)), shape=(len(self.lo), nv)).tocsr()
        constraints = LinearConstraint(A, np.array(self.lo), np.array(self.hi))
        options = {"time_limit": float(time_limit), "mip_rel_gap": mip_rel_gap}
        res = milp(objective, integrality=integrality, bounds=Bounds(lower, upper),
                   constraints=constraints, options=options)
        if res.x is None and res.status in (2, 4):
            # HiGHS occasionally rejects its own optimum over a 1e-6 infeasibility after presolve
            # (status 4), or calls a feasible model infeasible (status 2: a known schedule, the
            # upper bound's, is feasible by construction) when task lengths differ by 1e3 or more.
            res = milp(objective, integrality=integrality, bounds=Bounds(lower, upper),
                       constraints=constraints, options={**options, "presolve": False})
        return res
