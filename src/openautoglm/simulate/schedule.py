"""The simulator's plan: a Schedule built placement by placement, its checks, the lower bound.

Cast of characters:

- ``placement``: ``(worker, start, finish)`` of one task; ``cores``: how many of the worker's
  cores it holds for that whole interval.
- ``drt``: data-ready time of a task on a worker: every parent finished and, when the parent ran
  on another worker, its edge's ``size / bandwidth`` transfer done.
- ``eft``: earliest finish time; list scheduling puts each task where it finishes earliest.
- ``timeline``: per worker, the cores in use as a step function of time
  (:mod:`openautoglm.simulate.timeline`).

::

    worker 0  |--a--|     |--c--|          a -> c on the same worker: no transfer
    worker 1        |~~~~|--b--|           a -> b across workers: b waits size/bandwidth (~)

``Schedule.add`` refuses any placement that breaks the cost model, so a Schedule is valid by
construction; ``list_schedule`` builds one fast (arrays, bisect on the timelines, numpy over the
workers). ``check_schedule`` re-derives every constraint from the placements alone
(:mod:`openautoglm.simulate.checks`); ``Schedule.gantt`` draws with :mod:`openautoglm.simulate.gantt`.
Read ``tests/simulate/test_simulate.py`` for hand-computed schedules.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from openautoglm._typing import TaskKey, WorkerIndex
from openautoglm.core.cluster import Cluster
from openautoglm.core.costs import amdahl, gang_duration, transfer_time, upward_rank
from openautoglm.core.graph import TaskGraph
from openautoglm.simulate import timeline
from openautoglm.simulate.checks import placement_problems
from openautoglm.simulate.gantt import Bar, draw_gantt
from openautoglm.simulate.timeline import tol as _tol

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Schedule", "Placement", "InvalidScheduleError", "lower_bound", "check_schedule"]

class InvalidScheduleError(ValueError):
    """A placement or a schedule breaks the cost model (dependency, transfer or core capacity)."""


class Placement(NamedTuple):
    """Where and when one task runs."""

    worker: WorkerIndex
    start: float
    finish: float


class Schedule:
    """A (partial) plan: which worker runs each task, when, with how many cores.

    Args:
        graph: the tasks.
        cluster: the workers.

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph(); G.add_node("a", cost=2); G.add_node("b", cost=1)
        >>> G.add_edge("a", "b", size=3)
        >>> s = Schedule(TaskGraph.from_networkx(G), Cluster.homogeneous(2))
        >>> s.add("a", 0, 0.0)
        Placement(worker=0, start=0.0, finish=2.0)
        >>> s.add("b", 1, 4.0)
        Traceback (most recent call last):
        ...
        openautoglm.simulate.schedule.InvalidScheduleError: task 'b' cannot start at 4 on worker 1: \
the data of dependency 'a' (finished 2 on worker 0) arrives at 5
        >>> s.add("b", 0, 2.0).finish, s.makespan
        (3.0, 3.0)
    """

    def __init__(self, graph: TaskGraph, cluster: Cluster) -> None:
        if not isinstance(graph, TaskGraph):
            raise TypeError(f"graph must be a TaskGraph, got {type(graph).__name__}; "
                            "build one with TaskGraph.from_networkx(G)")
        if not isinstance(cluster, Cluster):
            raise TypeError(f"cluster must be a Cluster, got {type(cluster).__name__}; "
                            "build one with Cluster.homogeneous(n) or Cluster(speeds=[...])")
        self.graph = graph
        self.cluster = cluster
        self._et = graph.exec_time(cluster)
        n, W = len(graph), cluster.n_workers
        self._comm = transfer_time(graph.pred_size, cluster)  # aligned with pred_idx
        self._worker = np.full(n, -1, dtype=np.int64)
        self._start = np.full(n, np.nan)
        self._finish = np.full(n, np.nan)
        self._ncores = np.zeros(n, dtype=np.int64)
        self._T: list[list[float]] = [[0.0] for _ in range(W)]
        self._U: list[list[int]] = [[0] for _ in range(W)]
        self._end = np.zeros(W)          # end of the last busy step per worker
        self._last_start = np.zeros(W)   # latest start placed per worker (append-only mode)
        self.placements: dict[TaskKey, Placement] = {}
        self.cores: dict[TaskKey, int] = {}
        #: Gang tasks (``graph.gang > 1``): their workers, rank 0 first (``placements`` holds
        #: rank 0's worker, where the output lives).
        self.gangs: dict[TaskKey, tuple[WorkerIndex, ...]] = {}

    # ------------------------------------------------------------------ building
    def duration(self, task: TaskKey, worker: WorkerIndex, cores: int = 1) -> float:
        """Run time of ``task`` on ``worker`` with ``cores`` cores under the cost model."""
        i = self.graph._idx(task)
        return float(self._et[i, worker] * amdahl(self.graph.parallel[i], cores))

    def data_ready(self, task: TaskKey, worker: WorkerIndex) -> float:
        """When every dependency of ``task`` has finished and its data reached ``worker``.

        Raises:
            InvalidScheduleError: a dependency is not placed yet.
        """
        i = self.graph._idx(task)
        return self._data_ready(i, worker, check=True)

    def _data_ready(self, i: int, w: int, check: bool = False) -> float:
        g = self.graph
        ps, pe = g.pred_ptr[i], g.pred_ptr[i + 1]
        drt = 0.0
        for e in range(ps, pe):
            j = g.pred_idx[e]
            if self._worker[j] < 0:
                if check:
                    raise InvalidScheduleError(
                        f"task {g.tasks[i]!r} cannot be placed before its dependency "
                        f"{g.tasks[j]!r}: place {g.tasks[j]!r} first")
                return math.inf
            arrive = self._finish[j] + (self._comm[e] if self._worker[j] != w else 0.0)
            drt = max(drt, float(arrive))
        return drt

    def add(self, task: TaskKey, worker: WorkerIndex, start: float, cores: int = 1) -> Placement:
        """Place ``task`` on ``worker`` from ``start``, holding ``cores`` cores.

        Args:
            task: a task of the graph, not placed yet.
            worker: worker index in ``[0, cluster.n_workers)``; for a gang task
                (``graph.gang > 1``), a tuple of that many distinct workers, rank 0 first.
            start: start time in seconds (>= 0).
            cores: cores to hold, ``1 <= cores <= cluster.cores[worker]``.

        Returns:
            The placement; its finish follows from the cost model.

        Raises:
            InvalidScheduleError: unknown or already placed task, bad worker or core count,
                a dependency not placed or not finished, data not arrived, or the worker's cores
                over-subscribed somewhere in ``[start, finish)``.
        """
        g = self.graph
        if task not in g.index:
            raise InvalidScheduleError(f"unknown task {task!r}: it is not in the graph")
        i = g.index[task]
        if self._worker[i] >= 0:
            raise InvalidScheduleError(f"task {task!r} is placed twice (already at {self.placements[task]})")
        if g.gang[i] > 1 or isinstance(worker, (tuple, list)):
            return self._add_gang(task, i, worker, start, cores)
        W = self.cluster.n_workers
        if not isinstance(worker, (int, np.integer)) or not 0 <= worker < W:
            raise InvalidScheduleError(f"worker {worker!r} does not exist: use 0..{W - 1}")
        worker = int(worker)
        C = int(self.cluster.cores[worker])
        if not isinstance(cores, (int, np.integer)) or not 1 <= cores <= C:
            raise InvalidScheduleError(f"task {task!r}: cores={cores!r} but worker {worker} has {C} "
                                       f"core(s): use 1..{C}")
        start = float(start)
        if not math.isfinite(start) or start < 0:
            raise InvalidScheduleError(f"task {task!r}: start {start!r} must be finite and >= 0")
        ps, pe = g.pred_ptr[i], g.pred_ptr[i + 1]
        for e in range(ps, pe):
            j = g.pred_idx[e]
            dep = g.tasks[j]
            if self._worker[j] < 0:
                raise InvalidScheduleError(f"task {task!r} depends on {dep!r}, which is not placed: "
                                           f"place {dep!r} first")
            same = self._worker[j] == worker
            arrive = float(self._finish[j] + (0.0 if same else self._comm[e]))
            if start + _tol(arrive) < arrive:
                what = (f"dependency {dep!r} finishes at {self._finish[j]:.6g}" if same else
                        f"the data of dependency {dep!r} (finished {self._finish[j]:.6g} on worker "
                        f"{self._worker[j]}) arrives at {arrive:.6g}")
                raise InvalidScheduleError(f"task {task!r} cannot start at {start:.6g} on worker "
                                           f"{worker}: {what}")
        d = self.duration(task, worker, int(cores))
        clash = self._overload(worker, start, d, int(cores), C)
        if clash is not None:
            raise InvalidScheduleError(
                f"task {task!r} on worker {worker} over-subscribes its {C} core(s): "
                f"{clash[1]} core(s) already busy at {clash[0]:.6g}, {cores} more requested")
        return self._place(i, worker, start, int(cores), start + d)

    def _add_gang(self, task: TaskKey, i: int, members: Any, start: float, cores: int) -> Placement:
        """:meth:`add` for a gang task: every member free and every input there from ``start``."""
        g, W, k = self.graph, self.cluster.n_workers, int(self.graph.gang[i])
        if k == 1:
            raise InvalidScheduleError(f"task {task!r} is not a gang (gang=1): a single task takes "
                                       "one worker, give its index")
        members = tuple(members) if isinstance(members, (tuple, list)) else (members,)
        if (len(members) != k or len(set(members)) != k
                or not all(isinstance(w, (int, np.integer)) and 0 <= w < W for w in members)):
            raise InvalidScheduleError(f"task {task!r} is a gang of {k}: give {k} distinct workers "
                                       f"of 0..{W - 1} (rank 0 first), got {members!r}")
        members = tuple(int(w) for w in members)
        start = float(start)
        if not math.isfinite(start) or start < 0:
            raise InvalidScheduleError(f"task {task!r}: start {start!r} must be finite and >= 0")
        for w in members:
            C = int(self.cluster.cores[w])
            if not isinstance(cores, (int, np.integer)) or not 1 <= cores <= C:
                raise InvalidScheduleError(f"task {task!r}: cores={cores!r} but worker {w} has {C} "
                                           f"core(s): use 1..{C}")
        for e in range(g.pred_ptr[i], g.pred_ptr[i + 1]):
            j = g.pred_idx[e]
            if self._worker[j] < 0:
                raise InvalidScheduleError(f"task {task!r} depends on {g.tasks[j]!r}, which is not "
                                           f"placed: place {g.tasks[j]!r} first")
            for w in members:
                arrive = float(self._finish[j] + (0.0 if self._worker[j] == w else self._comm[e]))
                if start + _tol(arrive) < arrive:
                    raise InvalidScheduleError(
                        f"task {task!r} cannot start at {start:.6g} on worker {w}: the data of "
                        f"dependency {g.tasks[j]!r} (finished {self._finish[j]:.6g} on worker "
                        f"{self._worker[j]}) arrives at {arrive:.6g}")
        d = gang_duration(self._et[i], float(g.parallel[i]), members, int(cores))
        for w in members:
            C = int(self.cluster.cores[w])
            clash = self._overload(w, start, d, int(cores), C)
            if clash is not None:
                raise InvalidScheduleError(
                    f"gang task {task!r}: worker {w} over-subscribes its {C} core(s): {clash[1]} "
                    f"core(s) already busy at {clash[0]:.6g}, {cores} more requested")
        return self._place_gang(i, members, start, int(cores), start + d)

    def _place_gang(self, i: int, members: tuple[int, ...], t: float, k: int, f: float) -> Placement:
        """Record a valid gang placement: every member's timeline; rank 0 in ``placements``."""
        for w in reversed(members):
            pl = self._place(i, w, t, k, f)
        self.gangs[self.graph.tasks[i]] = members
        return pl

    def _overload(self, w: int, t: float, d: float, k: int, C: int) -> tuple[float, int] | None:
        """First (time, usage) in ``[t, t + d)`` where ``k`` more cores do not fit, else None."""
        return timeline.overload(self._T[w], self._U[w], t, d, k, C)

    def _place(self, i: int, w: int, t: float, k: int, f: float) -> Placement:
        """Record a placement that is known to be valid and update the worker's timeline."""
        self._worker[i], self._start[i], self._finish[i], self._ncores[i] = w, t, f, k
        key = self.graph.tasks[i]
        pl = Placement(w, t, f)
        self.placements[key] = pl
        self.cores[key] = k
        if t > self._last_start[w]:
            self._last_start[w] = t
        if f > t:
            timeline.occupy(self._T[w], self._U[w], t, f, k)
            self._end[w] = self._T[w][-1]
        return pl

    def _load(self, worker: np.ndarray, start: np.ndarray, finish: np.ndarray, T: np.ndarray,
              U: np.ndarray, L: np.ndarray, K: np.ndarray) -> None:
        """Adopt a complete plan computed by the compiled kernel (already valid)."""
        n = len(worker)
        rows = np.arange(n)
        self._worker[:] = worker
        self._start[:] = start
        self._finish[:] = finish
        self._ncores[:] = K[rows, worker] if n else 0
        for w in range(self.cluster.n_workers):
            self._T[w] = T[w, :L[w]].tolist()
            self._U[w] = U[w, :L[w]].tolist()
            self._end[w] = self._T[w][-1]
            on = worker == w
            self._last_start[w] = start[on].max() if on.any() else 0.0
        keys = self.graph.tasks
        self.placements = {keys[i]: Placement(w, s, f) for i, w, s, f in
                           zip(range(n), worker.tolist(), start.tolist(), finish.tolist())}
        self.cores = dict(zip(keys, self._ncores.tolist()))

    def _earliest_start(self, w: int, t: float, d: float, k: int, C: int) -> float:
        """Earliest ``s >= t`` with ``k`` cores free on ``w`` during ``[s, s + d)``."""
        return timeline.earliest_start(self._T[w], self._U[w], t, d, k, C)

    # ------------------------------------------------------------------ reading
    @property
    def makespan(self) -> float:
        """Finish time of the last task (0 for an empty schedule)."""
        if not self.placements:
            return 0.0
        return float(np.nanmax(self._finish))

    @property
    def complete(self) -> bool:
        """Whether every task of the graph is placed."""
        return len(self.placements) == len(self.graph)

    def __len__(self) -> int:
        return len(self.placements)

    def __repr__(self) -> str:
        return (f"Schedule({len(self.placements)}/{len(self.graph)} tasks, "
                f"{self.cluster.n_workers} workers, makespan={self.makespan:.6g})")

    def start_order(self) -> list[TaskKey]:
        """Tasks by planned start (ties by topological position): the order to submit them in."""
        placed = np.flatnonzero(self._worker >= 0)
        order = placed[np.lexsort((placed, self._start[placed]))]
        return [self.graph.tasks[i] for i in order]

    def validate(self) -> None:
        """Check the whole schedule from scratch.

        Raises:
            InvalidScheduleError: a task is not placed, or any placement breaks the cost model.
        """

        problems = check_schedule(self)
        if problems:
            raise InvalidScheduleError("; ".join(problems[:5]) +
                                       (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per placed task: task, worker, start, finish, duration, cores, sorted by start."""
        import pandas as pd

        rows = [(k, p.worker, p.start, p.finish, p.finish - p.start, self.cores[k])
                for k, p in self.placements.items()]
        df = pd.DataFrame(rows, columns=["task", "worker", "start", "finish", "duration", "cores"])
        return df.sort_values(["start", "worker"], kind="stable").reset_index(drop=True)

    def gantt(self, path: str | None = None, ax: Any = None, labels: bool | None = None) -> Any:
        """Draw a Gantt chart (one row per worker, one lane per core).

        Args:
            path: save the figure there (png, svg, pdf) when given.
            ax: a matplotlib Axes to draw into; a new figure otherwise.
            labels: write task names in bars (default: when there are at most 60 tasks).

        Returns:
            The matplotlib Axes.
        """
        bars = [Bar(key, p.start, p.finish, self.gangs.get(key, (p.worker,)), self.cores[key])
                for key in self.start_order() for p in (self.placements[key],)]
        return draw_gantt(self.cluster.cores.tolist(), bars, self.makespan, path, ax, labels)


def lower_bound(graph: TaskGraph, cluster: Cluster) -> float:
    """A makespan no schedule can beat: max(critical path, total work / total capacity).

    The critical path uses each task's fastest possible run time (best worker, all its cores)
    and no transfers; the work bound divides the least speed-weighted core-seconds each task
    needs by the cluster's speed-weighted core count. Both stay valid for ``costs`` nodes,
    multi-core workers, parallel fractions and gang tasks (a gang of k: the k-th fastest
    worker's pace, and one share of work on each of k workers).

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph([("a", "b")]); nx.set_node_attributes(G, 4.0, "cost")
        >>> lower_bound(TaskGraph.from_networkx(G), Cluster(speeds=[1, 2]))
        4.0
    """
    n = len(graph)
    if n == 0:
        return 0.0
    et = graph.exec_time(cluster)
    C = cluster.cores[None, :].astype(np.float64)
    each = et * amdahl(graph.parallel[:, None], C)
    weighted = et * cluster.speeds[None, :]
    # A gang of k runs at its slowest member's pace (at best the k-th fastest worker) and holds
    # every member: at least the k smallest speed-weighted run times of work.
    k = np.minimum(graph.gang, cluster.n_workers)
    fastest = np.sort(each, axis=1)[np.arange(n), k - 1]
    work = np.where(np.arange(cluster.n_workers)[None, :] < k[:, None],
                    np.sort(weighted, axis=1), 0.0).sum()
    critical_path = upward_rank(graph, fastest).max()  # longest path, no transfers
    capacity = float((cluster.speeds * cluster.cores).sum())
    return float(max(critical_path, work / capacity))


def check_schedule(schedule: Schedule, complete: bool = True) -> list[str]:
    """Every way ``schedule`` breaks the cost model, as readable messages (empty when valid).

    Args:
        schedule: the schedule to check.
        complete: also require every task of the graph to be placed.
    """
    return placement_problems(schedule.graph, schedule.cluster, schedule.placements,
                              schedule.cores, schedule.gangs, complete)
