"""Task graph -> feature tensors for the learned scheduler.

Cast of characters (all per task ``i`` unless said otherwise)::

    w_bar[i]   mean one-core run time over the workers (HEFT's averaged cost)
    c[e]       communication time of edge e: size / bandwidth
    rank_u[i]  upward rank: w_bar[i] + max over dependents j of (c[i->j] + rank_u[j])
    rank_d[i]  downward rank: max over dependencies p of (rank_d[p] + w_bar[p] + c[p->i])
    cp         critical path length: max over i of rank_u[i] + rank_d[i]
    slack[i]   (cp - rank_u[i] - rank_d[i]) / cp: 0 on the critical path
    ccr        communication-to-computation ratio: mean c[e] / mean w_bar

A small DAG and what it becomes::

        a            a: no dependencies, rank_d = 0, rank_u = cp
       / \\           b, c: both dependents of a; the heavier path has slack 0
      b   c          d: no dependents, rank_u = w_bar[d]
       \\ /
        d

Every feature is normalised per graph (times divided by ``cp`` or by the mean cost,
counts passed through ``log1p``) so that a model trained on 100-task graphs reads a
10,000-task graph on the same scale. A GCN aggregates symmetrically, so direction is given
to it as features: upward and downward ranks, separate in/out degrees and in/out
communication, and the mean rank of a task's dependencies and dependents.

The costs are read from the graph's arrays, so costs refined by execution history (which
rewrites the graph's ``cost`` and ``size`` attributes) flow in without change here.

Tests: ``tests/schedulers/gnn/test_features.py``.
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.costs import Ranks, edge_transfer_times, ranks

if TYPE_CHECKING:
    import torch

    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph

__all__ = ["graph_features", "FEATURE_NAMES", "GraphFeatures"]

#: Names of the columns of :attr:`GraphFeatures.x`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "rank_u",          # upward rank / cp (HEFT's priority, normalised)
    "rank_d",          # downward rank / cp
    "slack",           # (cp - rank_u - rank_d) / cp
    "on_cp",           # 1 on a critical path
    "rank_u0",         # upward rank without communication / cp0 (what clustering could reach)
    "cost",            # w_bar / mean w_bar
    "cost_spread",     # std over workers / w_bar (heterogeneity)
    "cost_min",        # fastest run time / w_bar
    "parallel",        # parallel fraction p
    "in_degree",       # log1p(number of dependencies)
    "out_degree",      # log1p(number of dependents)
    "in_comm",         # log1p(sum of incoming communication / mean w_bar)
    "out_comm",        # log1p(sum of outgoing communication / mean w_bar)
    "max_out_comm",    # log1p(heaviest outgoing edge / w_bar[i]): a chain wants to stay together
    "pred_rank_u",     # mean rank_u of dependencies (0 for entries)
    "succ_rank_u",     # mean rank_u of dependents (0 for exits)
    "level",           # depth in the DAG / max depth
    "ccr",             # log10 of the graph's CCR (same for every task)
    "parallelism",     # log(total work / (cp * n_workers)): >0 means workers are the limit
    "n_workers",       # log2(n_workers) / 4
    "cores",           # log2(mean cores per worker) / 3 (room for shares)
)


class GraphFeatures(NamedTuple):
    """What the GCN reads.

    Attributes:
        x: Node features, float32 tensor (n, len(FEATURE_NAMES)).
        edge_index: Long tensor (2, 2m): every dependency edge in both directions.
        edge_weight: Float32 tensor (2m,): ``1 + c[e] / mean w_bar`` (heavier data, tighter
            coupling), the same for both directions of an edge.
        ranks: The unnormalised :class:`Ranks` the features came from.
        adj: The same edges as a GCN-normalised sparse CSR matrix
            ``D^-1/2 (A + I) D^-1/2`` (float32, n x n): pass it as ``edge_index`` for a sparse
            matrix product instead of a scatter over edges (far faster on large graphs).
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    ranks: Ranks
    adj: torch.Tensor


def _safe_div(a: np.ndarray | float, b: float) -> np.ndarray:
    return np.asarray(a, dtype=np.float64) / b if b > 0 else np.zeros_like(np.asarray(a, dtype=np.float64))


def _feature_matrix(graph: TaskGraph, cluster: Cluster, r: Ranks) -> np.ndarray:
    exec_time = np.asarray(graph.exec_time(cluster), dtype=np.float64)
    n = exec_time.shape[0]
    src = np.asarray(graph.edge_src, dtype=np.int64)
    dst = np.asarray(graph.edge_dst, dtype=np.int64)
    mean_w = float(r.w_bar.mean()) if n else 0.0
    in_deg = np.bincount(dst, minlength=n).astype(np.float64)
    out_deg = np.bincount(src, minlength=n).astype(np.float64)
    in_comm = np.bincount(dst, weights=r.comm, minlength=n)
    out_comm = np.bincount(src, weights=r.comm, minlength=n)
    max_out = np.zeros(n)
    if len(src):
        np.maximum.at(max_out, src, r.comm)
    ru, rd = _safe_div(r.rank_u, r.cp), _safe_div(r.rank_d, r.cp)
    pred_ru = np.bincount(dst, weights=ru[src], minlength=n) / np.maximum(in_deg, 1.0)
    succ_ru = np.bincount(src, weights=ru[dst], minlength=n) / np.maximum(out_deg, 1.0)
    slack = np.clip(1.0 - ru - rd, 0.0, 1.0)
    on_cp = (slack < 1e-9).astype(np.float64)
    cp0 = float(r.rank_u0.max()) if n else 0.0
    mean_comm = float(r.comm.mean()) if len(r.comm) else 0.0
    ccr = mean_comm / mean_w if mean_w > 0 else 0.0
    work = float(exec_time.min(axis=1).sum()) if n else 0.0
    parallelism = work / (r.cp * cluster.n_workers) if r.cp > 0 else 1.0
    w_bar_safe = np.where(r.w_bar > 0, r.w_bar, 1.0)
    cols = [
        ru, rd, slack, on_cp, _safe_div(r.rank_u0, cp0),
        _safe_div(r.w_bar, mean_w),
        exec_time.std(axis=1) / w_bar_safe if n else np.zeros(0),
        exec_time.min(axis=1) / w_bar_safe if n else np.zeros(0),
        np.asarray(graph.parallel, dtype=np.float64),
        np.log1p(in_deg), np.log1p(out_deg),
        np.log1p(_safe_div(in_comm, mean_w)), np.log1p(_safe_div(out_comm, mean_w)),
        np.log1p(np.minimum(max_out / w_bar_safe, 1e6)),
        pred_ru, succ_ru,
        _safe_div(r.level, float(r.level.max()) if n else 0.0),
        np.full(n, np.log10(max(ccr, 1e-3))),
        np.full(n, np.log(max(parallelism, 1e-3))),
        np.full(n, np.log2(cluster.n_workers) / 4.0),
        np.full(n, np.log2(float(np.mean(cluster.cores))) / 3.0),
    ]
    x = np.stack(cols, axis=1) if n else np.zeros((0, len(FEATURE_NAMES)))
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def graph_features(graph: TaskGraph, cluster: Cluster) -> GraphFeatures:
    """Per-task features, edges and edge weights of a graph on a cluster.

    Args:
        graph: The task graph (its ``cost``/``costs``/``size`` attributes, possibly refined by
            execution history).
        cluster: The cluster the graph will run on.

    Returns:
        A :class:`GraphFeatures` whose ``x`` row ``i`` describes ``graph.tasks[i]``.

    Raises:
        ValueError: If the cluster's bandwidth is not positive.

    Example:
        >>> import networkx as nx
        >>> from openautoglm.core.graph import TaskGraph
        >>> from openautoglm.core.cluster import Cluster
        >>> G = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
        >>> nx.set_node_attributes(G, 1.0, "cost")
        >>> f = graph_features(TaskGraph.from_networkx(G), Cluster.homogeneous(2))
        >>> tuple(f.x.shape), tuple(f.edge_index.shape)
        ((4, 21), (2, 8))
        >>> f.x[:, FEATURE_NAMES.index("on_cp")].tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    import torch

    if not float(cluster.bandwidth) > 0:
        raise ValueError(
            f"cluster bandwidth must be positive to compute communication costs, got "
            f"{cluster.bandwidth!r}; build the cluster with bandwidth > 0"
        )
    r = ranks(graph, cluster)
    x = _feature_matrix(graph, cluster, r)
    src = np.asarray(graph.edge_src, dtype=np.int64)
    dst = np.asarray(graph.edge_dst, dtype=np.int64)
    mean_w = float(r.w_bar.mean()) if len(r.w_bar) else 0.0
    weight = 1.0 + np.log1p(_safe_div(r.comm, mean_w))
    edge_index = np.concatenate([np.stack([src, dst]), np.stack([dst, src])], axis=1)
    edge_weight = np.concatenate([weight, weight])
    return GraphFeatures(
        torch.from_numpy(x.astype(np.float32)),
        torch.from_numpy(edge_index.astype(np.int64)),
        torch.from_numpy(edge_weight.astype(np.float32)),
        r,
        _normalized_adjacency(graph, cluster, mean_w),
    )


def _argsort_unique(keys: np.ndarray, bound: int) -> np.ndarray:
    """Argsort of distinct non-negative keys below ``bound``: one sort of (key, index) packed
    into int64 when they fit (about 3x faster than ``np.argsort`` on a million keys)."""
    idx_bits = max(1, int(len(keys)).bit_length())
    if int(bound).bit_length() + idx_bits > 62:
        return np.argsort(keys)
    packed = np.sort((keys << idx_bits) | np.arange(len(keys), dtype=np.int64))
    return packed & ((1 << idx_bits) - 1)


def _normalized_adjacency(graph: TaskGraph, cluster: Cluster, mean_w: float) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` as a valid CSR matrix (columns sorted within each row).

    The same weights as ``edge_weight`` in both directions and unit self loops, as
    ``torch_geometric``'s ``gcn_norm`` computes them.
    """
    import torch

    n = len(graph)
    src = np.asarray(graph.edge_src, dtype=np.int64)
    dst = np.asarray(graph.edge_dst, dtype=np.int64)
    w = 1.0 + np.log1p(_safe_div(edge_transfer_times(graph, cluster), mean_w))
    loops = np.arange(n, dtype=np.int64)
    rows = np.concatenate([dst, src, loops])
    cols = np.concatenate([src, dst, loops])
    vals = np.concatenate([w, w, np.ones(n)])
    deg = np.bincount(rows, weights=vals, minlength=n)
    dinv = 1.0 / np.sqrt(deg)
    vals = vals * dinv[rows] * dinv[cols]
    order = _argsort_unique(rows * max(n, 1) + cols, max(n, 1) ** 2)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(ptr), torch.from_numpy(cols[order]),
                                       torch.from_numpy(vals[order].astype(np.float32)), (n, n),
                                       check_invariants=False)
