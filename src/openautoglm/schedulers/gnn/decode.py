"""The one-shot decoder: the GCN's outputs -> a plan, in a handful of list-scheduling calls.

::

    edge head: p[e] = P(parent and child on one worker)
        |  edges with p > 1/2, most likely first (ties: heavier data first)
        v
    union-find merges under a balance cap (a cluster's work <= total work / k)
        |  clusters of two or more tasks onto the fastest k workers, largest first (LPT)
        v
    list scheduling by the learned priority with the learned shares, clusters pinned
        (k = W, ceil(W / 2), ceil(W / 4); plus the free placement: at most 4 calls)
        v
    the plan with the least simulated makespan

With no edge above 1/2 (an untrained edge head says 1/2 everywhere) nothing is merged and the
decoder returns the free placement alone: one call, the learned priority's list schedule
(HEFT's when the priority head is untrained too).

Tests: ``tests/schedulers/gnn/test_decode.py``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.schedulers.gnn.placement import _map_clusters, merge_clusters
from openautoglm.simulate.list_scheduler import ListEvaluator

if TYPE_CHECKING:
    import torch

    from openautoglm.core.cluster import Cluster
    from openautoglm.core.costs import Ranks
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.list_scheduler import ListResult

__all__ = ["DECODE_FRACTIONS", "EDGE_FEATURE_NAMES", "Decoded", "colocation_pins", "decode",
           "edge_features"]

#: Columns of :func:`edge_features`, in order (edge e = u -> v, c = its transfer time).
EDGE_FEATURE_NAMES: tuple[str, ...] = (
    "comm_src",      # log1p(c / w_bar[u])
    "comm_dst",      # log1p(c / w_bar[v])
    "comm_mean",     # log1p(c / mean w_bar)
    "share_out",     # c / heaviest outgoing edge of u (1: u's heaviest)
    "share_in",      # c / heaviest incoming edge of v (1: v's heaviest)
    "fan_out",       # log1p(out-degree of u)
    "fan_in",        # log1p(in-degree of v)
    "path",          # (rank_d[u] + w_bar[u] + c + rank_u[v]) / cp: 1 on a critical path
    "ccr",           # log10 of the graph's CCR
    "n_workers",     # log2(workers) / 4
    "parallelism",   # log(total work / (cp * workers))
)

#: Fractions of the workers the decoder's cluster plans use.
DECODE_FRACTIONS: tuple[float, ...] = (1.0, 0.5, 0.25)


class Decoded(NamedTuple):
    """The decoder's plan.

    Attributes:
        result: Its simulated plan (a :func:`~openautoglm.simulate.list_makespan` result).
        priority: The priority it was scheduled with.
        shares: The shares it was scheduled with (``None``: one core per task).
        pins: Worker per task (-1: free), or ``None`` for the free placement.
        name: ``"learned"`` (free placement) or ``"learned clusters(k=...)"``.
        calls: List-scheduling calls spent.
    """

    result: ListResult
    priority: np.ndarray
    shares: np.ndarray | None
    pins: np.ndarray | None
    name: str
    calls: int


def edge_features(graph: TaskGraph, cluster: Cluster, r: Ranks) -> np.ndarray:
    """Per-edge features the edge head reads, float32 (m, len(EDGE_FEATURE_NAMES)).

    Args:
        graph: The task graph.
        cluster: The cluster.
        r: The graph's :func:`~openautoglm.core.costs.ranks` on ``cluster``.

    Returns:
        Row ``e`` describes edge ``(graph.edge_src[e], graph.edge_dst[e])``.

    Example:
        >>> import networkx as nx
        >>> from openautoglm.core.graph import TaskGraph
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> G = nx.DiGraph(); G.add_nodes_from([(k, {"cost": 1.0}) for k in "ab"])
        >>> G.add_edge("a", "b", size=3.0)
        >>> g, c = TaskGraph.from_networkx(G), Cluster.homogeneous(2)
        >>> e = edge_features(g, c, ranks(g, c))
        >>> e.shape, float(e[0, EDGE_FEATURE_NAMES.index("path")])
        ((1, 11), 1.0)
    """
    src = np.asarray(graph.edge_src, dtype=np.int64)
    dst = np.asarray(graph.edge_dst, dtype=np.int64)
    n, m = len(graph), len(src)
    if m == 0:
        return np.zeros((0, len(EDGE_FEATURE_NAMES)), dtype=np.float32)
    c = np.asarray(r.comm, dtype=np.float64)
    w = np.where(r.w_bar > 0, r.w_bar, 1.0)
    mean_w = float(r.w_bar.mean()) or 1.0
    bw = float(cluster.bandwidth) if cluster.n_workers > 1 else np.inf
    max_out = _segment_max(np.asarray(graph.succ_size, dtype=np.float64) / bw, graph.succ_ptr, n)
    max_in = _segment_max(np.asarray(graph.pred_size, dtype=np.float64) / bw, graph.pred_ptr, n)
    out_deg = np.bincount(src, minlength=n)
    in_deg = np.bincount(dst, minlength=n)
    cp = r.cp if r.cp > 0 else 1.0
    ccr = float(c.mean()) / mean_w
    work = float(np.asarray(graph.exec_time(cluster)).min(axis=1).sum())
    parallelism = work / (r.cp * cluster.n_workers) if r.cp > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cols = [
            np.log1p(np.minimum(c / w[src], 1e6)),
            np.log1p(np.minimum(c / w[dst], 1e6)),
            np.log1p(np.minimum(c / mean_w, 1e6)),
            np.where(max_out[src] > 0, c / max_out[src], 0.0),
            np.where(max_in[dst] > 0, c / max_in[dst], 0.0),
            np.log1p(out_deg[src]),
            np.log1p(in_deg[dst]),
            (r.rank_d[src] + r.w_bar[src] + c + r.rank_u[dst]) / cp,
            np.full(m, math.log10(max(ccr, 1e-3))),
            np.full(m, math.log2(cluster.n_workers) / 4.0),
            np.full(m, math.log(max(parallelism, 1e-3))),
        ]
    x = np.stack(cols, axis=1)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _segment_max(values: np.ndarray, ptr: np.ndarray, n: int) -> np.ndarray:
    """Max of ``values[ptr[i]:ptr[i + 1]]`` per ``i`` (0 for empty segments): CSR rows."""
    ptr = np.asarray(ptr, dtype=np.int64)
    out = np.zeros(n)
    nonempty = np.flatnonzero(ptr[1:] > ptr[:-1])
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(values, ptr[:-1][nonempty])
    return out


def colocation_pins(graph: TaskGraph, cluster: Cluster, r: Ranks, prob: np.ndarray,
                    fraction: float = 1.0, balance: float = 1.0, threshold: float = 0.5
                    ) -> np.ndarray | None:
    """Placement clusters from the edge head: merge likely co-located edges, map to workers.

    Args:
        graph: The task graph.
        cluster: The cluster.
        r: The graph's ranks.
        prob: Co-location probability of every edge (graph edge order).
        fraction: Fraction of the workers (the fastest) the clusters go onto.
        balance: Cap on a cluster's work, in units of ``total work / k``.
        threshold: Edges merge only above this probability.

    Returns:
        Worker per task (-1: free), or ``None`` when no edge is above the threshold.
    """
    src = np.asarray(graph.edge_src, dtype=np.int64)
    dst = np.asarray(graph.edge_dst, dtype=np.int64)
    prob = np.asarray(prob, dtype=np.float64)
    keep = np.flatnonzero(prob > threshold)
    if len(keep) == 0 or cluster.n_workers < 2:
        return None
    # Most likely first; ties (e.g. saturated probabilities) broken by heavier data first.
    keep = keep[np.lexsort((-np.asarray(r.comm)[keep], -prob[keep]))]
    k = max(1, min(cluster.n_workers, math.ceil(fraction * cluster.n_workers)))
    cap = balance * float(r.w_bar.sum()) / k
    roots = merge_clusters(src[keep], dst[keep], r.w_bar, cap)
    return _map_clusters(graph, cluster, roots, k)


def decode(graph: TaskGraph, cluster: Cluster, r: Ranks, priority: np.ndarray,
           share: np.ndarray | None, prob: np.ndarray | None,
           fractions: tuple[float, ...] = DECODE_FRACTIONS,
           evaluate: ListEvaluator | None = None) -> Decoded:
    """The one-shot plan: the free placement and the edge head's clusters, the best kept.

    Args:
        graph: The task graph.
        cluster: The cluster.
        r: The graph's ranks.
        priority: Learned priority per task.
        share: Learned share per task (``None``: one core per task).
        prob: Co-location probability per edge, or ``None`` (no edge head: free placement).
        fractions: Fractions of the workers tried for the clusters.
        evaluate: A :class:`~openautoglm.simulate.list_scheduler.ListEvaluator` for these shares (made here
            when ``None``); its ``calls`` count the decoder's list-scheduling calls.

    Returns:
        The :class:`Decoded` plan with the least makespan (the first of equals).
    """
    ev = evaluate if evaluate is not None else ListEvaluator(graph, cluster, share)
    before = ev.calls
    prio = np.ascontiguousarray(priority, dtype=np.float64)
    best = (ev(prio, None), None, "learned")
    seen: set[bytes] = set()
    if prob is not None and len(prob):
        for fraction in fractions:
            pins = colocation_pins(graph, cluster, r, prob, fraction)
            if pins is None:
                break
            key = pins.tobytes()
            if key in seen or (pins < 0).all():
                continue
            seen.add(key)
            res = ev(prio, pins)
            if res.makespan < best[0].makespan * (1 - 1e-12):
                best = (res, pins, f"learned clusters(k={fraction:g})")
    return Decoded(best[0], prio, share, best[1], best[2], ev.calls - before)


def predict_colocation(model: torch.nn.Module, h: torch.Tensor, graph: TaskGraph,
                       cluster: Cluster, r: Ranks) -> np.ndarray | None:
    """The edge head's co-location probability per edge (``None``: the model has none)."""
    import torch

    if not getattr(model, "edge_channels", 0) or len(graph.edge_src) == 0:
        return None
    ea = torch.from_numpy(edge_features(graph, cluster, r))
    src = torch.from_numpy(np.array(graph.edge_src, dtype=np.int64))
    dst = torch.from_numpy(np.array(graph.edge_dst, dtype=np.int64))
    return torch.sigmoid(model.colocation(h, src, dst, ea)).double().numpy()
