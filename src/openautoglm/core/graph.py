"""Task graphs: a validated DAG with the arrays every scheduler reads.

Cast of characters:

- ``cost``: seconds a task runs on a speed-1 worker with one core.
- ``costs``: alternatively, one run time per worker (unrelated machines).
- ``parallel``: parallel fraction ``p``; with ``k`` cores a task runs
  ``base * ((1 - p) + p / k)``.
- ``size``: seconds an edge's data takes to move between two different workers at bandwidth 1.
- ``ccr``: communication-to-computation ratio, mean edge ``size`` / mean ``cost``.

::

        a          a TaskGraph keeps the networkx graph (``g.nx``) and, indexed by
       / \\         position in one fixed topological order (``g.tasks``), numpy arrays:
      b   c        ``cost``, ``parallel``, the edge list and CSR adjacency in both
       \\ /         directions (``pred_*``, ``succ_*``).
        d

The loaders at the bottom build TaskGraphs from WfCommons traces (``load_wfcommons``) and
DAGGEN-style random layered DAGs (``random_dag``). Read ``tests/core/test_graph.py`` for the behaviour.
"""
from __future__ import annotations

import math
import numbers
from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from openautoglm._typing import TaskKey
from openautoglm._validate import InputError, check_number, short
from openautoglm.core.gang import check_gang_size, gang_cost

if TYPE_CHECKING:
    import networkx as nx

    from openautoglm.core.cluster import Cluster

__all__ = ["TaskGraph", "CycleError"]


#: Largest cost or edge size accepted (seconds; 31 million years): sums stay finite.
MAX_SECONDS = 1e15


class CycleError(ValueError):
    """A task graph contains a cycle (the message lists it: ``a -> b -> a``)."""


def _check_cost(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputError(f"{where} must be a number of seconds, got {type(value).__name__} "
                         f"{short(value)}; convert it first (a string is not a cost)")
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise InputError(
            f"{where} is {short(value)}: costs must be finite and non-negative seconds; "
            "fix the estimate (use 0 for a free task)"
        )
    if x > MAX_SECONDS:
        raise InputError(f"{where} is {short(value)}, over {MAX_SECONDS:g} s (sums of such "
                         "values overflow); use a larger time unit")
    return x


def _check_costs(value: Any, key: Any) -> list[float]:
    """A task's per-worker ``costs``: a list of numbers (never a string read digit by digit)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise InputError(f"task {short(key)}: costs must be a list of run times, one per worker, "
                         f"got {type(value).__name__} {short(value)}; e.g. costs=[12.0, 8.0]")
    return [_check_cost(c, f"task {short(key)}: costs[{j}]") for j, c in enumerate(value)]


class TaskGraph:
    """An immutable, validated task DAG with array views for schedulers.

    Build one with :meth:`from_networkx`, :func:`load_wfcommons` or :func:`random_dag`.

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph()
        >>> G.add_node("a", cost=2.0); G.add_node("b", cost=3.0)
        >>> G.add_edge("a", "b", size=1.5)
        >>> g = TaskGraph.from_networkx(G)
        >>> g.tasks, len(g), g.cost.tolist(), g.edge_size.tolist()
        (['a', 'b'], 2, [2.0, 3.0], [1.5])
        >>> g.dependencies("b"), g.dependents("a")
        (['a'], ['b'])
    """

    def __init__(self, G: nx.DiGraph, order: list[TaskKey], cost: np.ndarray,
                 costs: np.ndarray | None, parallel: np.ndarray,
                 edge_src: np.ndarray, edge_dst: np.ndarray, edge_size: np.ndarray) -> None:
        """Internal: use :meth:`from_networkx`. Arrays must already be validated."""
        self._G = G
        self.tasks: list[TaskKey] = order
        self.index: dict[TaskKey, int] = {k: i for i, k in enumerate(order)}
        n = len(order)
        self.cost = cost
        #: (n, W) per-worker run times for ``costs`` nodes, NaN rows elsewhere; None if no node has them.
        self.costs = costs
        self.parallel = parallel
        self.edge_src, self.edge_dst, self.edge_size = edge_src, edge_dst, edge_size
        self.pred_ptr, self.pred_idx, self.pred_size = _csr(edge_dst, edge_src, edge_size, n)
        self.succ_ptr, self.succ_idx, self.succ_size = _csr(edge_src, edge_dst, edge_size, n)
        for a in (self.cost, self.parallel, self.edge_src, self.edge_dst, self.edge_size,
                  self.pred_ptr, self.pred_idx, self.pred_size,
                  self.succ_ptr, self.succ_idx, self.succ_size):
            a.flags.writeable = False
        if self.costs is not None:
            self.costs.flags.writeable = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_networkx(cls, G: nx.DiGraph) -> TaskGraph:
        """Validate a networkx DiGraph and build a TaskGraph from it.

        Args:
            G: nodes carry ``cost`` (seconds at speed 1) or ``costs`` (one run time per worker),
                optionally ``parallel`` in [0, 1], and ``gang=k`` for a task that holds k
                workers at once (:mod:`openautoglm.core.gang`: ``gang_costs`` or
                ``gang_parallel``/``gang_comm``); edges optionally carry ``size`` (default 0).
                Other attributes are kept (``g.nx.nodes[k]``).

        Returns:
            The TaskGraph. Its topological order is Kahn's algorithm over ``G``'s node insertion
            order, so it does not depend on the task names.

        Raises:
            CycleError: the graph has a cycle; the message lists it.
            ValueError: a cost is missing, negative or not finite; ``costs`` lists differ in length.

        Example:
            >>> import networkx as nx
            >>> G = nx.DiGraph([("a", "b"), ("b", "a")])
            >>> TaskGraph.from_networkx(G)
            Traceback (most recent call last):
            ...
            openautoglm.core.graph.CycleError: Cycle detected between the following tasks: a -> b -> a
        """
        import networkx as nx

        if not isinstance(G, nx.DiGraph) or G.is_multigraph():
            raise InputError(f"expected a networkx.DiGraph, got {type(G).__name__}; "
                            "build one with nx.DiGraph() (multigraphs are not supported)")
        order = _topological_order(G)
        n = len(order)
        index = {k: i for i, k in enumerate(order)}
        cost = np.zeros(n)
        parallel = np.zeros(n)
        costs_rows: dict[int, list[float]] = {}
        width = None
        for i, k in enumerate(order):
            attrs = G.nodes[k]
            k_gang = 1 if attrs.get("gang") is None else check_gang_size(k, attrs["gang"])
            if k_gang > 1:  # its run time on its k workers (per-k costs or Amdahl)
                cost[i] = gang_cost(k, attrs, k_gang)
            elif attrs.get("costs") is not None:
                row = _check_costs(attrs["costs"], k)
                if not row:
                    raise InputError(f"task {short(k)}: 'costs' is empty; give one run time per worker")
                if width is not None and len(row) != width:
                    raise InputError(f"task {short(k)} has {len(row)} 'costs' but another task has "
                                     f"{width}: give one run time per worker for every task")
                width = len(row)
                costs_rows[i] = row
                cost[i] = float(np.mean(row))
            elif "cost" in attrs:
                cost[i] = _check_cost(attrs["cost"], f"task {k!r}: cost")
            else:
                raise InputError(f"task {short(k)} has no 'cost' (seconds on a speed-1 worker) and no "
                                 "'costs' (one run time per worker): add one of them")
            p = attrs.get("parallel", 0.0)
            parallel[i] = 0.0 if p is None else check_number(
                p, f"task {short(k)}: parallel fraction", maximum=1.0,
                fix="it lies in [0, 1] (0 = serial)")
        costs = None
        if costs_rows:
            costs = np.full((n, width), np.nan)
            for i, row in costs_rows.items():
                costs[i] = row
        m = G.number_of_edges()
        src = np.empty(m, dtype=np.int64)
        dst = np.empty(m, dtype=np.int64)
        size = np.empty(m)
        for e, (u, v, d) in enumerate(G.edges(data=True)):
            src[e], dst[e] = index[u], index[v]
            sz = d.get("size", 0.0)
            size[e] = _check_cost(0.0 if sz is None else sz, f"edge {short(u)} -> {short(v)}: size")
        return cls(G, order, cost, costs, parallel, src, dst, size)

    # ------------------------------------------------------------------ queries
    @property
    def gang(self) -> np.ndarray:
        """(n,) ints: the workers each task holds at once (node attribute ``gang``, default 1).

        A gang task's ``cost`` is its run time on that many workers (:mod:`openautoglm.core.gang`).
        """
        gang = self.__dict__.get("_gang")
        if gang is None:
            gang = np.array([int(self._G.nodes[k].get("gang", 1) or 1) for k in self.tasks],
                            dtype=np.int64)
            gang.flags.writeable = False
            self._gang = gang
        return gang

    @property
    def nx(self) -> nx.DiGraph:
        """The underlying networkx DiGraph (do not mutate it)."""
        return self._G

    def __len__(self) -> int:
        return len(self.tasks)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    def __repr__(self) -> str:
        return f"TaskGraph(n={len(self)}, m={len(self.edge_src)}, ccr={self.ccr:.3g})"

    def dependencies(self, key: TaskKey) -> list[TaskKey]:
        """Tasks whose output ``key`` reads (its parents), in topological order."""
        i = self._idx(key)
        return [self.tasks[j] for j in sorted(self.pred_idx[self.pred_ptr[i]:self.pred_ptr[i + 1]])]

    def dependents(self, key: TaskKey) -> list[TaskKey]:
        """Tasks that read ``key``'s output (its children), in topological order."""
        i = self._idx(key)
        return [self.tasks[j] for j in sorted(self.succ_idx[self.succ_ptr[i]:self.succ_ptr[i + 1]])]

    def _idx(self, key: TaskKey) -> int:
        try:
            return self.index[key]
        except (KeyError, TypeError):
            raise KeyError(f"unknown task {key!r}; the graph has {len(self)} tasks, "
                           f"e.g. {self.tasks[:3]!r}") from None

    @property
    def ccr(self) -> float:
        """Communication-to-computation ratio: mean edge size / mean task cost (0 without edges)."""
        if len(self.edge_size) == 0 or len(self) == 0:
            return 0.0
        mc = float(self.cost.mean())
        return float(self.edge_size.mean()) / mc if mc > 0 else math.inf

    def exec_time(self, cluster: Cluster) -> np.ndarray:
        """One-core run time of every task on every worker.

        Args:
            cluster: the workers; ``cost / speed[w]``, or ``costs[w]`` for nodes that carry them.

        Returns:
            float64 array of shape ``(len(self), cluster.n_workers)``.

        Raises:
            ValueError: ``costs`` lists do not have one entry per worker of ``cluster``.

        Example:
            >>> import networkx as nx
            >>> from openautoglm.core.cluster import Cluster
            >>> G = nx.DiGraph(); G.add_node("a", cost=4.0)
            >>> TaskGraph.from_networkx(G).exec_time(Cluster(speeds=[1, 2])).tolist()
            [[4.0, 2.0]]
        """
        et = self.cost[:, None] / cluster.speeds[None, :]
        if self.costs is not None:
            if self.costs.shape[1] != cluster.n_workers:
                raise ValueError(f"tasks carry 'costs' for {self.costs.shape[1]} workers but the "
                                 f"cluster has {cluster.n_workers}: use a cluster with "
                                 f"{self.costs.shape[1]} workers")
            rows = ~np.isnan(self.costs[:, 0])
            et[rows] = self.costs[rows]
        return et

    def with_ccr(self, ccr: float) -> TaskGraph:
        """A copy whose edge sizes are scaled so that mean size / mean cost equals ``ccr``.

        Args:
            ccr: target communication-to-computation ratio (>= 0).

        Returns:
            A new TaskGraph (node attributes shared, edge ``size`` rescaled).

        Raises:
            ValueError: ``ccr`` is negative, or the graph has no data to scale (no edges,
                all sizes 0, or all costs 0) while ``ccr > 0``.

        Example:
            >>> import networkx as nx
            >>> G = nx.DiGraph(); G.add_node(0, cost=2.0); G.add_node(1, cost=4.0)
            >>> G.add_edge(0, 1, size=1.0)
            >>> TaskGraph.from_networkx(G).with_ccr(10).edge_size.tolist()
            [30.0]
        """
        ccr = float(ccr)
        if not math.isfinite(ccr) or ccr < 0:
            raise ValueError(f"ccr must be a finite number >= 0, got {ccr!r}")
        mean_size = float(self.edge_size.mean()) if len(self.edge_size) else 0.0
        mean_cost = float(self.cost.mean()) if len(self) else 0.0
        if ccr > 0 and (mean_size <= 0 or mean_cost <= 0):
            raise ValueError("cannot scale to a positive CCR: the graph has no edge data "
                             "(no edges or all sizes 0) or all costs are 0")
        factor = ccr * mean_cost / mean_size if mean_size > 0 else 0.0
        H = self._G.copy()
        for e, (u, v) in enumerate(zip(self.edge_src, self.edge_dst)):
            H.edges[self.tasks[u], self.tasks[v]]["size"] = float(self.edge_size[e]) * factor
        return TaskGraph(H, self.tasks, self.cost, self.costs, self.parallel,
                         self.edge_src, self.edge_dst, self.edge_size * factor)

    def relabel(self, mapping: dict[TaskKey, TaskKey] | Any) -> TaskGraph:
        """A copy with tasks renamed by ``mapping`` (a dict or a function); same order and arrays.

        Example:
            >>> import networkx as nx
            >>> G = nx.DiGraph(); G.add_node("a", cost=1.0)
            >>> TaskGraph.from_networkx(G).relabel({"a": ("a", 0)}).tasks
            [('a', 0)]
        """
        f = mapping.__getitem__ if isinstance(mapping, dict) else mapping
        import networkx as nx

        H = nx.relabel_nodes(self._G, mapping, copy=True)
        return TaskGraph(H, [f(k) for k in self.tasks], self.cost, self.costs, self.parallel,
                         self.edge_src, self.edge_dst, self.edge_size.copy())


def _csr(key: np.ndarray, val: np.ndarray, size: np.ndarray, n: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compressed rows: for row i, ``val[ptr[i]:ptr[i+1]]`` with their sizes."""
    order = np.argsort(key, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n), out=ptr[1:])
    return ptr, val[order].astype(np.int64), size[order].astype(np.float64)


def _topological_order(G: nx.DiGraph) -> list[Hashable]:
    """Kahn's algorithm, FIFO over insertion order; raises CycleError listing a cycle."""
    indeg = {k: d for k, d in G.in_degree()}
    queue = deque(k for k, d in indeg.items() if d == 0)
    order = []
    while queue:
        k = queue.popleft()
        order.append(k)
        for c in G.successors(k):
            indeg[c] -= 1
            if indeg[c] == 0:
                queue.append(c)
    if len(order) != len(indeg):
        rest = G.subgraph(k for k, d in indeg.items() if d > 0)
        import networkx as nx

        cycle = [u for u, _ in nx.find_cycle(rest)]
        text = " -> ".join(str(k) for k in cycle + cycle[:1])
        raise CycleError(f"Cycle detected between the following tasks: {text}")
    return order


