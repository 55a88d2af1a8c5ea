"""The cost model every stage shares: task durations (``cost / speed * ((1 - p) + p / k)``), mean
costs ``w̄``/``c̄``, and upward/downward ranks (:func:`ranks` computes both at once).

Cast of characters (Topcuoglu et al. 2002):

- ``w̄_i``: mean run time of task i over the workers; ``c̄_ij``: mean transfer time of edge i -> j
  between two different workers (``size / bandwidth``).
- ``rank_u`` (upward rank, bottom level): ``w̄_i + max_j (c̄_ij + rank_u(j))`` over children j.
- ``rank_d`` (downward rank, top level): ``max_j (rank_d(j) + w̄_j + c̄_ji)`` over parents j.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from openautoglm.core import _kernels
from openautoglm.core.cluster import Cluster
from openautoglm.core.graph import TaskGraph

__all__ = ["Ranks", "ranks", "upward_rank", "downward_rank", "mean_costs", "task_durations",
           "amdahl", "gang_duration", "transfer_time", "edge_transfer_times"]


def mean_costs(graph: TaskGraph, cluster: Cluster) -> tuple[np.ndarray, np.ndarray]:
    """``(w̄, c̄)``: mean one-core run time per task and mean transfer time per edge (pred CSR order).

    ``c̄`` is ``size / bandwidth`` (the transfer between two different workers, as in the HEFT
    paper); 0 on a single-worker cluster, where nothing ever moves.
    """
    wbar = graph.exec_time(cluster).mean(axis=1)
    if cluster.n_workers == 1:
        return wbar, np.zeros_like(graph.pred_size, dtype=np.float64)
    return wbar, transfer_time(graph.pred_size, cluster)


def transfer_time(size: np.ndarray | float, cluster: Cluster) -> np.ndarray:
    """Seconds to move ``size`` bytes between two different workers: ``size / bandwidth``.

    Between tasks on the same worker a transfer is free; callers choose where it applies.

    >>> transfer_time([2.0, 4.0], Cluster.homogeneous(2, bandwidth=2.0)).tolist()
    [1.0, 2.0]
    """
    return np.asarray(size, dtype=np.float64) / float(cluster.bandwidth)


def edge_transfer_times(graph: TaskGraph, cluster: Cluster) -> np.ndarray:
    """Transfer time of every edge in the graph's edge order (``edge_src``/``edge_dst``), with
    the single-worker convention of :func:`mean_costs`: 0 on one worker, where nothing moves."""
    if cluster.n_workers == 1:
        return np.zeros(len(graph.edge_src), dtype=np.float64)
    return transfer_time(graph.edge_size, cluster)


def upward_rank(graph: TaskGraph, wbar: np.ndarray, cbar_pred: np.ndarray | None = None
                ) -> np.ndarray:
    """Bottom levels: ``rank_u(i) = wbar[i] + max over children j of (c̄_ij + rank_u(j))``.

    Args:
        graph: the tasks.
        wbar: (n,) node weights.
        cbar_pred: (m,) edge weights aligned with ``graph.pred_idx`` (None: no communication).

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph(); G.add_edge("a", "b", size=2); nx.set_node_attributes(G, 1.0, "cost")
        >>> g = TaskGraph.from_networkx(G)
        >>> upward_rank(g, g.cost, g.pred_size).tolist()
        [4.0, 1.0]
    """
    cb_arr = cbar_pred if cbar_pred is not None else np.zeros(len(graph.pred_idx))
    return _kernels.ranks("up", wbar, graph.pred_ptr, graph.pred_idx, cb_arr)


def downward_rank(graph: TaskGraph, wbar: np.ndarray, cbar_pred: np.ndarray | None = None
                  ) -> np.ndarray:
    """Top levels: ``rank_d(i) = max over parents j of (rank_d(j) + wbar[j] + c̄_ji)`` (0 at entries).

    Example:
        >>> import networkx as nx
        >>> G = nx.DiGraph(); G.add_edge("a", "b", size=2); nx.set_node_attributes(G, 1.0, "cost")
        >>> g = TaskGraph.from_networkx(G)
        >>> downward_rank(g, g.cost, g.pred_size).tolist()
        [0.0, 3.0]
    """
    cb_arr = cbar_pred if cbar_pred is not None else np.zeros(len(graph.pred_idx))
    return _kernels.ranks("down", wbar, graph.pred_ptr, graph.pred_idx, cb_arr)


def task_durations(graph: TaskGraph, cluster: Cluster, cores: np.ndarray | None = None
                   ) -> np.ndarray:
    """Run time of every task on every worker with ``cores[i, w]`` cores (default 1).

    Returns ``base * ((1 - p) + p / k)`` with ``base = graph.exec_time(cluster)``.
    """
    et = graph.exec_time(cluster)
    if cores is None:
        return et
    return et * amdahl(graph.parallel[:, None], cores)


def amdahl(parallel: np.ndarray | float, cores: np.ndarray | float) -> np.ndarray | float:
    """The run-time factor of a task whose fraction ``parallel`` runs on ``cores`` cores.

    ``(1 - p) + p / k`` (Amdahl's law): a one-core run time times this factor is the run time on
    ``k`` cores; divide by it to go back (history turns a measured duration into a cost so).

    >>> amdahl(0.5, 2), amdahl(1.0, 4), amdahl(0.0, 8)
    (0.75, 0.25, 1.0)
    """
    return (1.0 - parallel) + parallel / cores


def gang_duration(et_row: np.ndarray, parallel: float, members: tuple[int, ...], cores: int) -> float:
    """Run time of a gang task on ``members`` with ``cores`` cores each: the slowest member's
    one-core run time times :func:`amdahl` (a gang runs at its slowest member's pace)."""
    return max(float(et_row[w]) for w in members) * amdahl(parallel, cores)


class Ranks(NamedTuple):
    """Per-task path lengths of a graph on a cluster (seconds, not normalised).

    Attributes:
        w_bar: Mean one-core run time over the workers, shape (n,).
        comm: Communication time of every edge, in the graph's edge order, shape (m,).
        rank_u: Upward rank (HEFT priority), shape (n,).
        rank_d: Downward rank, shape (n,).
        rank_u0: Upward rank with communication ignored, shape (n,).
        level: Number of edges on the longest path from an entry task, shape (n,).
        cp: Critical path length ``max(rank_u + rank_d)``.
    """

    w_bar: np.ndarray
    comm: np.ndarray
    rank_u: np.ndarray
    rank_d: np.ndarray
    rank_u0: np.ndarray
    level: np.ndarray
    cp: float


def ranks(graph: TaskGraph, cluster: Cluster) -> Ranks:
    """Upward and downward ranks of every task (HEFT's averaged costs).

    Args:
        graph: The task graph.
        cluster: The cluster whose speeds and bandwidth set the costs.

    Returns:
        The :class:`Ranks` of the graph.

    Example:
        >>> import networkx as nx
        >>> from openautoglm.core.graph import TaskGraph
        >>> from openautoglm.core.cluster import Cluster
        >>> G = nx.DiGraph()
        >>> G.add_nodes_from([("a", {"cost": 2.0}), ("b", {"cost": 3.0}), ("c", {"cost": 1.0})])
        >>> G.add_edges_from([("a", "b", {"size": 4.0}), ("a", "c", {"size": 0.0})])
        >>> r = ranks(TaskGraph.from_networkx(G), Cluster.homogeneous(2))
        >>> float(r.cp), float(r.rank_u[0]), float(r.rank_u0[0])
        (9.0, 9.0, 5.0)
    """
    w_bar, cbar = mean_costs(graph, cluster)
    rank_u = upward_rank(graph, w_bar, cbar)
    rank_d = downward_rank(graph, w_bar, cbar)
    cp = float((rank_u + rank_d).max()) if len(graph) else 0.0
    return Ranks(w_bar, edge_transfer_times(graph, cluster), rank_u, rank_d,
                 upward_rank(graph, w_bar), _levels(graph).astype(np.float64), cp)


def _levels(graph: TaskGraph) -> np.ndarray:
    """Depth of every task (edges on the longest path from an entry), by Kahn frontiers."""
    n = len(graph)
    succ_ptr = np.asarray(graph.succ_ptr, dtype=np.int64)
    succ_idx = np.asarray(graph.succ_idx, dtype=np.int64)
    indeg = np.diff(np.asarray(graph.pred_ptr, dtype=np.int64))
    level = np.zeros(n, dtype=np.int64)
    frontier = np.flatnonzero(indeg == 0)
    depth = 0
    while frontier.size:
        level[frontier] = depth
        starts, counts = succ_ptr[frontier], succ_ptr[frontier + 1] - succ_ptr[frontier]
        total = int(counts.sum())
        if total == 0:
            break
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        children, dec = np.unique(succ_idx[offsets], return_counts=True)
        indeg[children] -= dec
        frontier = children[indeg[children] == 0]
        depth += 1
    return level
