"""Candidate placements for the learned scheduler: heavy-edge clustering (:func:`cluster_pins`,
with the union-find :func:`merge_clusters`, compiled when numba is there) and linear clustering
along critical chains (:func:`linear_pins`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from openautoglm import _numba
from openautoglm._numba import HAVE_NUMBA
from openautoglm.core.costs import Ranks, transfer_time

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph

__all__ = ["cluster_pins", "linear_pins", "merge_clusters"]

_KERNELS = _numba.Kernels(globals(), ("_find", "_merge"))


def cluster_pins(
    graph: TaskGraph,
    cluster: Cluster,
    r: Ranks,
    min_ratio: float = 0.0,
    balance: float = 1.0,
    worker_fraction: float = 1.0,
    heaviest_first: np.ndarray | None = None,
) -> np.ndarray:
    """Placement clusters: keep the endpoints of heavy edges on one worker.

    Edges are taken heaviest first; an edge whose communication time is at least
    ``min_ratio`` times the lighter endpoint's cost merges the two clusters unless the merged
    work would exceed ``balance * total work / k``, with ``k = ceil(worker_fraction * W)``
    workers (the fastest). Clusters of two or more tasks are then mapped onto those workers,
    largest first, each to the worker where it would finish its share of work first.

    Args:
        graph: The task graph.
        cluster: The cluster.
        r: The graph's :func:`~openautoglm.core.costs.ranks` on ``cluster``.
        min_ratio: Smallest communication / cost ratio of an edge worth keeping local.
        balance: Cap on a cluster's work, in units of an even share of the work.
        worker_fraction: Fraction of the workers to use (fewer workers when data is heavy).
        heaviest_first: ``np.argsort(-r.comm, kind="stable")`` when the caller already has it
            (computed when ``None``).

    Returns:
        Int array (n,): the worker of each task, or -1 where the list scheduler chooses.

    Example:
        >>> import networkx as nx
        >>> from openautoglm.core.graph import TaskGraph
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> G = nx.DiGraph()
        >>> G.add_nodes_from([(k, {"cost": 1.0}) for k in "abcd"])
        >>> G.add_edges_from([("a", "b", {"size": 9.0}), ("c", "d", {"size": 9.0})])
        >>> g, c = TaskGraph.from_networkx(G), Cluster.homogeneous(2)
        >>> pins = cluster_pins(g, c, ranks(g, c))
        >>> bool(pins[g.index["a"]] == pins[g.index["b"]] != pins[g.index["c"]] == pins[g.index["d"]])
        True
    """
    n = len(graph)
    src = np.asarray(graph.edge_src)
    dst = np.asarray(graph.edge_dst)
    w = r.w_bar
    k = max(1, min(cluster.n_workers, math.ceil(worker_fraction * cluster.n_workers)))
    cap = balance * float(w.sum()) / k
    heavy = (r.comm > 0) & (r.comm >= min_ratio * np.minimum(w[src], w[dst])) if n else np.zeros(0, bool)
    if heaviest_first is None:
        heaviest_first = np.argsort(-r.comm, kind="stable")
    order = heaviest_first[heavy[heaviest_first]]
    roots = merge_clusters(src[order], dst[order], w, cap)
    return _map_clusters(graph, cluster, roots, k)


def _map_clusters(graph: TaskGraph, cluster: Cluster, roots: np.ndarray, k: int) -> np.ndarray:
    """Clusters (a root per task) onto the fastest ``k`` workers, largest first (LPT)."""
    n = len(graph)
    sizes = np.bincount(roots, minlength=n)
    exec_time = np.asarray(graph.exec_time(cluster))
    workers = np.argsort(exec_time.sum(axis=0), kind="stable")[:k]
    cluster_work = np.bincount(roots, weights=exec_time[:, workers].mean(axis=1) if n else None,
                               minlength=n)
    load = np.zeros(k)
    # Relative speed of each chosen worker (1 = the slowest); a worker whose total work is 0
    # (all costs 0) counts as the slowest, not as a division by zero.
    total = exec_time[:, workers].sum(axis=0) if n else np.ones(k)
    positive = total[total > 0]
    slowest = positive.min() if positive.size else 1.0
    speed = np.where(total > 0, slowest / np.where(total > 0, total, 1.0), 1.0).tolist()
    target = np.full(n, -1, dtype=np.int64)
    # Singletons stay free unless the graph must fit on fewer workers.
    min_size = 2 if k == cluster.n_workers else 1
    sizes_l, work_l, load_l = sizes.tolist(), cluster_work.tolist(), load.tolist()
    for root in np.argsort(-cluster_work, kind="stable").tolist():
        if sizes_l[root] < min_size:
            continue
        cw = work_l[root]
        j = min(range(k), key=lambda q: (load_l[q] + cw) / speed[q])
        load_l[j] += cw
        target[root] = workers[j]
    return target[roots]


def linear_pins(graph: TaskGraph, cluster: Cluster, r: Ranks, worker_fraction: float = 1.0
                ) -> np.ndarray:
    """Linear clustering: peel off the heaviest remaining paths as clusters, then map them.

    Tasks are taken by ``rank_u + rank_d`` (critical first); from each task not clustered yet
    the path follows the unclustered successor with the largest transfer time plus upward
    rank, and the whole path becomes one cluster. Clusters go onto the fastest
    ``ceil(worker_fraction * W)`` workers as in :func:`cluster_pins`.

    Args:
        graph: The task graph.
        cluster: The cluster.
        r: The graph's :func:`~openautoglm.core.costs.ranks` on ``cluster``.
        worker_fraction: Fraction of the workers to use.

    Returns:
        Int array (n,): the worker of each task, or -1 where the list scheduler chooses.

    Source: linear clustering, Kim & Browne (ICPP 1988).

    Example: a chain with heavy data stays on one worker, even where three are free.

        >>> import networkx as nx
        >>> from openautoglm.core.graph import TaskGraph
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> G = nx.DiGraph([("a", "b"), ("b", "c")])
        >>> nx.set_node_attributes(G, 1.0, "cost"); nx.set_edge_attributes(G, 5.0, "size")
        >>> g = TaskGraph.from_networkx(G)
        >>> linear_pins(g, Cluster.homogeneous(3), ranks(g, Cluster.homogeneous(3))).tolist()
        [0, 0, 0]
    """
    n = len(graph)
    roots = np.full(n, -1, dtype=np.int64)
    ptr, idx = graph.succ_ptr.tolist(), graph.succ_idx.tolist()
    gain = transfer_time(graph.succ_size, cluster).tolist()
    ru = r.rank_u.tolist()
    rl = roots.tolist()
    for s in np.argsort(-(r.rank_u + r.rank_d), kind="stable").tolist():
        if rl[s] >= 0:
            continue
        i = s
        while True:
            rl[i] = s
            best, bv = -1, -1.0
            for e in range(ptr[i], ptr[i + 1]):
                j = idx[e]
                if rl[j] < 0 and gain[e] + ru[j] > bv:
                    best, bv = j, gain[e] + ru[j]
            if best < 0:
                break
            i = best
    k = max(1, min(cluster.n_workers, math.ceil(worker_fraction * cluster.n_workers)))
    return _map_clusters(graph, cluster, np.asarray(rl, dtype=np.int64), k)


def _find(parent, i):  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _merge(parent, src, dst, work, cap, roots):  # pragma: no cover - compiled
    for e in range(len(src)):
        a = _find(parent, src[e])
        b = _find(parent, dst[e])
        if a != b and work[a] + work[b] <= cap:
            parent[b] = a
            work[a] += work[b]
    for i in range(len(parent)):
        roots[i] = _find(parent, i)
    return roots


def merge_clusters(src: np.ndarray, dst: np.ndarray, work: np.ndarray, cap: float) -> np.ndarray:
    """Union the endpoints of edges in the given order while a cluster's work stays <= cap.

    Returns the cluster root of every task (int64 array); compiled when numba is available.
    """
    n = len(work)
    if HAVE_NUMBA:
        return _KERNELS.compiled("_merge")(
            np.arange(n, dtype=np.int64), np.ascontiguousarray(src, np.int64),
            np.ascontiguousarray(dst, np.int64), np.array(work, dtype=np.float64), float(cap),
            np.empty(n, dtype=np.int64))
    roots = _KERNELS.python("_merge")(list(range(n)), np.asarray(src).tolist(),
                                      np.asarray(dst).tolist(),
                                      np.asarray(work, dtype=np.float64).tolist(), float(cap), [0] * n)
    return np.asarray(roots, dtype=np.int64)
