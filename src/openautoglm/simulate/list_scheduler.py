"""The list scheduler every policy ends in: tasks in priority order, each on the worker that
finishes it first (:func:`list_schedule`, :func:`list_makespan`, :class:`ListEvaluator`).

The loop itself is in :mod:`openautoglm.simulate._kernel` (numba, with the Python reference).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import amdahl, transfer_time
from openautoglm.core.graph import TaskGraph
from openautoglm import _numba
from openautoglm._progress import report
from openautoglm.simulate import _kernel
from openautoglm.simulate._reference import run_list_python
from openautoglm.simulate.gang import run_list_gangs
from openautoglm.simulate.schedule import Schedule

__all__ = ["list_schedule", "ListEvaluator", "ListResult", "list_makespan"]


class ListResult(NamedTuple):
    """A list-scheduling plan as arrays (indexed like ``graph.tasks``), without a Schedule.

    Attributes:
        makespan: Finish time of the last task.
        worker: Int array (n,): the worker of every task.
        start: Float array (n,): planned start times.
        finish: Float array (n,): planned finish times.
    """

    makespan: float
    worker: np.ndarray
    start: np.ndarray
    finish: np.ndarray


def _per_task(name: str, arr: Any, n: int, dtype: type) -> np.ndarray:
    a = np.asarray(arr, dtype=dtype).reshape(-1)
    if a.shape != (n,):
        raise ValueError(f"{name} must have one entry per task ({n}), got shape {np.shape(arr)}")
    return a


def list_schedule(graph: TaskGraph, cluster: Cluster, priority: Any, cores: Any = None,
                  shares: Any = None, workers: Any = None, insertion: bool = True,
                  engine: str = "auto") -> Schedule:
    """The list scheduler every priority-based policy uses.

    Repeatedly takes the ready task with the highest ``priority`` (ties: earlier topological
    position) and places it where it finishes earliest (ties: lowest worker index), starting no
    earlier than its data-ready time on that worker. A gang task (``graph.gang > 1``) goes to
    the k workers and start that finish it first, all k free together for its whole run
    (:mod:`openautoglm.simulate.gang`; graphs with gangs run the Python loop).

    Args:
        graph: the tasks.
        cluster: the workers.
        priority: (n,) floats, higher runs earlier among ready tasks.
        cores: (n,) ints, cores per task on any worker (default 1); workers with fewer cores
            are not candidates for that task.
        shares: (n,) floats in (0, 1]: task i gets ``max(1, round(share * cores[w]))`` cores on
            candidate worker w. Give ``cores`` or ``shares``, not both.
        workers: (n,) ints, -1 = free choice, ``w >= 0`` pins the task to worker w (a gang's
            rank 0).
        insertion: fill idle gaps (HEFT's insertion policy); when False a task never starts
            before a task placed earlier on the same worker.
        engine: ``"auto"`` (compiled with numba when installed, else Python), ``"numba"`` or
            ``"python"``; both give identical schedules (``tests/simulate/test_simulate.py``).

    Returns:
        A complete, valid :class:`Schedule`.

    Raises:
        ValueError: arrays of the wrong shape, non-finite priorities, a task pinned to or
            needing more cores than any allowed worker has.

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph([("a", "b"), ("a", "c")]); nx.set_node_attributes(G, 1.0, "cost")
        >>> nx.set_edge_attributes(G, 0.5, "size")
        >>> g = TaskGraph.from_networkx(G)
        >>> s = list_schedule(g, Cluster.homogeneous(2), priority=[2, 1, 0])
        >>> for task, placement in sorted(s.placements.items()): print(task, placement)
        a Placement(worker=0, start=0.0, finish=1.0)
        b Placement(worker=0, start=1.0, finish=2.0)
        c Placement(worker=1, start=1.5, finish=2.5)
    """
    sched = Schedule(graph, cluster)
    prio, K, dur = _list_inputs(graph, cluster, sched._et, priority, cores, shares, workers, engine)
    if graph.gang.max(initial=1) > 1:  # gang tasks: the Python loop (simulate/gang.py)
        pins = None if workers is None else np.asarray(workers, dtype=np.int64).reshape(-1)
        run_list_gangs(sched, prio, K, dur, insertion, graph.gang, pins)
        return sched
    out = None
    if engine == "numba" or (engine == "auto" and _numba.worth_compiling(len(graph))):
        out = _kernel.run_list(prio, K, dur, cluster.cores, graph.pred_ptr, graph.pred_idx,
                                    sched._comm, graph.succ_ptr, graph.succ_idx, insertion)
    if out is None:
        run_list_python(sched, prio, K, dur, insertion)
    else:
        sched._load(*out, K)
    return sched


def list_makespan(graph: TaskGraph, cluster: Cluster, priority: Any, cores: Any = None,
                  shares: Any = None, workers: Any = None, insertion: bool = True,
                  engine: str = "auto") -> ListResult:
    """:func:`list_schedule`'s plan as arrays, without building a :class:`Schedule`.

    The same algorithm and the same placements (the tests compare them); for searches that
    simulate many candidate plans and build the Schedule of the winner only. Arguments and
    errors as :func:`list_schedule`.

    Returns:
        A :class:`ListResult` (makespan and per-task worker, start and finish).

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph([("a", "b"), ("a", "c")]); nx.set_node_attributes(G, 1.0, "cost")
        >>> nx.set_edge_attributes(G, 0.5, "size")
        >>> r = list_makespan(TaskGraph.from_networkx(G), Cluster.homogeneous(2), [2, 1, 0])
        >>> r.makespan, r.worker.tolist()
        (2.5, [0, 0, 1])
    """
    if graph.gang.max(initial=1) > 1:
        s = list_schedule(graph, cluster, priority, cores, shares, workers, insertion, engine)
        makespan = s.makespan
        return ListResult(makespan, s._worker.copy(), s._start.copy(), s._finish.copy())
    et = graph.exec_time(cluster)
    prio, K, dur = _list_inputs(graph, cluster, et, priority, cores, shares, workers, engine)
    out = None
    if engine != "python":
        out = _kernel.run_list(prio, K, dur, cluster.cores, graph.pred_ptr, graph.pred_idx,
                                    transfer_time(graph.pred_size, cluster), graph.succ_ptr,
                                    graph.succ_idx, insertion, arrays_only=True)
    if out is None:
        sched = Schedule(graph, cluster)
        run_list_python(sched, prio, K, dur, insertion)
        worker, start, finish = sched._worker, sched._start, sched._finish
    else:
        worker, start, finish = out
    makespan = float(finish.max()) if len(finish) else 0.0
    return ListResult(makespan, worker, start, finish)


class ListEvaluator:
    """:func:`list_makespan` on one graph for many priorities and pins, inputs checked once.

    ``ev(priority, workers)`` returns the same plan as ``list_makespan(graph, cluster,
    priority, shares=shares, workers=workers)`` (the tests compare them) without re-checking
    the arguments or recomputing the run times: what a search that simulates thousands of
    candidate plans of one graph calls. Without numba it calls :func:`list_makespan`.

    Args:
        graph: The task graph.
        cluster: The cluster.
        shares: Share of a worker's cores per task (as :func:`list_schedule`), or ``None``.

    Attributes:
        calls: Plans simulated so far.

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph([("a", "b"), ("a", "c")]); nx.set_node_attributes(G, 1.0, "cost")
        >>> ev = ListEvaluator(TaskGraph.from_networkx(G), Cluster.homogeneous(2))
        >>> ev(np.array([2.0, 1.0, 0.0]), np.array([0, 1, 1])).makespan, ev.calls
        (3.0, 1)
    """

    def __init__(self, graph: TaskGraph, cluster: Cluster, shares: Any = None) -> None:
        self.graph, self.cluster, self.shares = graph, cluster, shares
        n = len(graph)
        _, self._K, self._dur = _list_inputs(graph, cluster, graph.exec_time(cluster),
                                             np.zeros(n), None, shares, None, "auto")
        self._comm = transfer_time(graph.pred_size, cluster)
        self.calls = 0

    def __call__(self, priority: np.ndarray, workers: np.ndarray | None = None) -> ListResult:
        """Simulate one plan: ``priority`` (float, per task), ``workers`` (-1: free) or None."""
        self.calls += 1
        report(self.calls)  # a long search's progress bar counts calls (no-op when none is up)
        g = self.graph
        out = None
        if _kernel.HAVE_NUMBA and len(g) and g.gang.max() == 1:
            dur = self._dur if workers is None else _pin_rows(self._dur.copy(), workers)
            out = _kernel.run_list(priority, self._K, dur, self.cluster.cores, g.pred_ptr,
                                        g.pred_idx, self._comm, g.succ_ptr, g.succ_idx, True,
                                        arrays_only=True)
        if out is None:
            return list_makespan(g, self.cluster, priority, shares=self.shares, workers=workers)
        worker, start, finish = out
        return ListResult(float(finish.max()), worker, start, finish)


def _pin_rows(dur: np.ndarray, pin: np.ndarray) -> np.ndarray:
    """In place: a task pinned to worker ``pin[i] >= 0`` can run there only (inf elsewhere)."""
    rows = np.flatnonzero(pin >= 0)
    keep = dur[rows, pin[rows]]
    dur[rows] = np.inf
    dur[rows, pin[rows]] = keep
    return dur


def _list_inputs(graph: TaskGraph, cluster: Cluster, et: np.ndarray, priority: Any, cores: Any,
                 shares: Any, workers: Any, engine: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check list_schedule's arguments; return priority, cores (n, W) and durations (n, W)."""
    n, W = len(graph), cluster.n_workers
    prio = _per_task("priority", priority, n, np.float64)
    if not np.isfinite(prio).all():
        raise ValueError("priority must be finite for every task")
    C = cluster.cores
    if cores is not None and shares is not None:
        raise ValueError("give either cores (per task) or shares (fraction of a worker), not both")
    if cores is not None:
        k = _per_task("cores", cores, n, np.float64)
        if not ((k >= 1) & (k == np.round(k))).all():
            raise ValueError("cores must be integers >= 1")
        K = np.broadcast_to(k[:, None], (n, W)).astype(np.int64)
    elif shares is not None:
        sh = _per_task("shares", shares, n, np.float64)
        if not ((sh > 0) & (sh <= 1)).all():
            raise ValueError("shares must lie in (0, 1]")
        K = np.maximum(1, np.rint(sh[:, None] * C[None, :])).astype(np.int64)
    else:
        K = np.ones((n, W), dtype=np.int64)
    if cores is None and shares is None and not graph.parallel.any():
        dur = np.array(et, dtype=np.float64)  # (1 - 0) + 0 / 1 == 1 exactly: the same durations
    else:
        dur = et * amdahl(graph.parallel[:, None], K)
        dur[K > C[None, :]] = np.inf
    if workers is not None:
        pin = _per_task("workers", workers, n, np.int64)
        if ((pin < -1) | (pin >= W)).any():
            raise ValueError(f"workers must be -1 (free) or a worker index 0..{W - 1}")
        _pin_rows(dur, pin)
    # Costs are finite (TaskGraph checks them): only cores can leave a task without a worker.
    bad = (np.flatnonzero(~np.isfinite(dur).any(axis=1)) if cores is not None or shares is not None
           else ())
    if len(bad):
        key = graph.tasks[bad[0]]
        raise ValueError(f"task {key!r} fits on no allowed worker: it needs more cores than its "
                         f"worker(s) have (cluster cores {C.tolist()}); lower its cores or unpin it")
    if engine not in ("auto", "numba", "python"):
        raise ValueError(f"engine must be 'auto', 'numba' or 'python', got {engine!r}")
    if engine == "numba" and not _kernel.HAVE_NUMBA:
        raise ValueError("engine='numba' needs numba: pip install numba (or use engine='auto')")
    return prio, K, dur
