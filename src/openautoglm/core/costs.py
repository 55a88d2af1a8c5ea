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

__all__ = ["Ranks", "ranks", "upward_rank", "downward_rank", "mean_costs", "task_durations"]


def mean_costs(graph: TaskGraph, cluster: Cluster) -> tuple[np.ndarray, np.ndarray]:
    """``(w̄, c̄)``: mean one-core run time per task and mean transfer time per edge (pred CSR order).

    ``c̄`` is ``size / bandwidth`` (the transfer between two different workers, as in the HEFT
    paper); 0 on a single-worker cluster, where nothing ever moves.
    """
    wbar = graph.exec_time(cluster).mean(axis=1)
    if cluster.n_workers == 1:
        return wbar, np.zeros_like(graph.pred_size)
    return wbar, graph.pred_size / cluster.bandwidth


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
    p = graph.parallel[:, None]
    return et * ((1.0 - p) + p / cores)


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
    exec_time = np.asarray(graph.exec_time(cluster), dtype=np.float64)
    n = exec_time.shape[0]
    w_bar = exec_time.mean(axis=1) if n else np.zeros(0)
    # On one worker nothing ever moves (HEFT's convention too): communication is free.
    bw = float(cluster.bandwidth) if cluster.n_workers > 1 else np.inf
    comm = np.asarray(graph.edge_size, dtype=np.float64) / bw
    if len(comm) > _DENSE * n:
        return _ranks_by_level(graph, w_bar, comm, bw)
    succ_ptr = np.asarray(graph.succ_ptr).tolist()
    succ_idx = np.asarray(graph.succ_idx).tolist()
    pred_ptr = np.asarray(graph.pred_ptr).tolist()
    pred_idx = np.asarray(graph.pred_idx).tolist()
    succ_comm = (np.asarray(graph.succ_size, dtype=np.float64) / bw).tolist()
    pred_comm = (np.asarray(graph.pred_size, dtype=np.float64) / bw).tolist()
    w = w_bar.tolist()
    # Tasks are stored in topological order: one backward and one forward sweep.
    ru = [0.0] * n
    ru0 = [0.0] * n
    for i in range(n - 1, -1, -1):
        best = best0 = 0.0
        for e in range(succ_ptr[i], succ_ptr[i + 1]):
            j = succ_idx[e]
            v = succ_comm[e] + ru[j]
            if v > best:
                best = v
            if ru0[j] > best0:
                best0 = ru0[j]
        ru[i] = w[i] + best
        ru0[i] = w[i] + best0
    rd = [0.0] * n
    lv = [0] * n
    for i in range(n):
        best = 0.0
        depth = 0
        for e in range(pred_ptr[i], pred_ptr[i + 1]):
            p = pred_idx[e]
            v = rd[p] + w[p] + pred_comm[e]
            if v > best:
                best = v
            if lv[p] + 1 > depth:
                depth = lv[p] + 1
        rd[i] = best
        lv[i] = depth
    rank_u = np.asarray(ru)
    rank_d = np.asarray(rd)
    cp = float((rank_u + rank_d).max()) if n else 0.0
    return Ranks(w_bar, comm, rank_u, np.asarray(rd), np.asarray(ru0), np.asarray(lv, dtype=np.float64), cp)


#: Above this many edges per task, ranks are computed level by level with numpy.
_DENSE = 4


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


def _ranks_by_level(graph: TaskGraph, w_bar: np.ndarray, comm: np.ndarray, bw: float) -> Ranks:
    """The same ranks as the per-task sweep, one numpy pass per DAG level (dense graphs)."""
    n = len(graph)
    level = _levels(graph)
    src = np.asarray(graph.edge_src, dtype=np.int64)
    dst = np.asarray(graph.edge_dst, dtype=np.int64)
    n_levels = int(level.max()) + 1 if n else 0
    by_src = np.argsort(level[src], kind="stable")
    src_cut = np.searchsorted(level[src][by_src], np.arange(n_levels + 1))
    by_dst = np.argsort(level[dst], kind="stable")
    dst_cut = np.searchsorted(level[dst][by_dst], np.arange(n_levels + 1))
    nodes = np.argsort(level, kind="stable")
    node_cut = np.searchsorted(level[nodes], np.arange(n_levels + 1))
    ru, ru0, rd = np.zeros(n), np.zeros(n), np.zeros(n)
    best, best0 = np.zeros(n), np.zeros(n)
    for lv in range(n_levels - 1, -1, -1):
        e = by_src[src_cut[lv]:src_cut[lv + 1]]
        np.maximum.at(best, src[e], comm[e] + ru[dst[e]])
        np.maximum.at(best0, src[e], ru0[dst[e]])
        v = nodes[node_cut[lv]:node_cut[lv + 1]]
        ru[v] = w_bar[v] + best[v]
        ru0[v] = w_bar[v] + best0[v]
    for lv in range(1, n_levels):
        e = by_dst[dst_cut[lv]:dst_cut[lv + 1]]
        np.maximum.at(rd, dst[e], rd[src[e]] + w_bar[src[e]] + comm[e])
    cp = float((ru + rd).max()) if n else 0.0
    return Ranks(w_bar, comm, ru, rd, ru0, level.astype(np.float64), cp)
