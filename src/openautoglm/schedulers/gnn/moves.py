"""Placement moves: which tasks to try on which worker, read off a simulated plan.

Each generator looks at one way a plan wastes time and proposes ``(tasks, worker)`` moves
(``tasks`` one index or an array of them, kept together); :func:`placement_moves` lists them
all, in this order:

- merge: empty one of the two least busy workers onto a worker it exchanges much data with
  (or onto the idlest one);
- chain: walk back from the task that finishes last and, wherever a task waited for data from
  another worker, try it on the sender's worker (and the sender on the task's);
- critical: along the critical path (late data, or the worker's previous task), try each task
  on its parents' workers;
- edge groups: for the heaviest edges between workers, move one endpoint's local group (tasks
  joined by same-worker edges) to the other's worker;
- paths: the same edges, moving only the endpoint's heaviest same-worker path;
- offload: the tasks with the least data per second of work (:func:`offload_order`) to the
  least busy workers.

The search that tries them (:func:`~openautoglm.schedulers.gnn.local_search.refine_placement`)
checks each by the list scheduler. Tests: ``tests/schedulers/gnn/test_gnn.py``,
``tests/schedulers/gnn/test_local_search.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from openautoglm.core.costs import transfer_time

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.list_scheduler import ListResult

__all__ = ["offload_order", "placement_moves"]


def offload_order(graph: TaskGraph, cluster: Cluster) -> np.ndarray:
    """Tasks by data moved per second of work, cheapest first: the first to offload."""
    w_bar = np.asarray(graph.exec_time(cluster)).mean(axis=1)
    io = (np.bincount(graph.edge_src, weights=graph.edge_size, minlength=len(graph))
          + np.bincount(graph.edge_dst, weights=graph.edge_size, minlength=len(graph)))
    return np.argsort(transfer_time(io, cluster) / np.maximum(w_bar, 1e-12), kind="stable")


def placement_moves(graph: TaskGraph, cluster: Cluster, plan: ListResult, comm: np.ndarray,
                    cheap_first: np.ndarray, edge_score: np.ndarray | None = None
                    ) -> list[tuple[Any, int]]:
    """Every move worth trying from ``plan``, in the module docstring's order.

    Args:
        graph: The task graph.
        cluster: The cluster.
        plan: The plan the moves start from.
        comm: Transfer time per dependency (``graph.pred_size`` order).
        cheap_first: :func:`offload_order` of the graph.
        edge_score: Order of the cut edges the group and path moves try (graph edge order,
            highest first); ``None``: heaviest data first.

    Returns:
        ``(task or tasks, worker)`` pairs.
    """
    return [*_merge_moves(graph, cluster, plan),
            *_chain_moves(graph, cluster, plan, comm),
            *_critical_moves(graph, plan, comm),
            *_edge_moves(graph, plan, score=edge_score),
            *_path_moves(graph, plan, score=edge_score),
            *_offload_moves(cluster, plan, cheap_first)]


def _heaviest(edges: np.ndarray, size: np.ndarray, limit: int) -> np.ndarray:
    """The ``limit`` heaviest of ``edges``, heaviest first (ties: lower index first)."""
    if len(edges) > 4 * limit:
        # Only the heaviest few are needed: keep those at least the limit-th size, then sort.
        cut = np.partition(size[edges], len(edges) - limit)[len(edges) - limit]
        edges = edges[size[edges] >= cut]
    return edges[np.argsort(-size[edges], kind="stable")][:limit]


def _offload_moves(cluster: Cluster, plan: ListResult, order: np.ndarray,
                   limit: int = 16) -> list[tuple[int, int]]:
    """Move tasks with the least data per second of work (``order``) to the least busy worker."""
    busy = np.bincount(plan.worker, weights=plan.finish - plan.start, minlength=cluster.n_workers)
    moves: list[tuple[int, int]] = []
    for idle in np.argsort(busy / cluster.speeds, kind="stable")[:2].tolist():
        moves += [(int(i), idle) for i in order[: 4 * limit] if plan.worker[i] != idle][:limit]
    return moves


def _merge_moves(graph: TaskGraph, cluster: Cluster, plan: ListResult, limit: int = 2
                 ) -> list[tuple[np.ndarray, int]]:
    """Empty the least busy workers onto the workers they exchange the most data with."""
    W = cluster.n_workers
    wk = plan.worker
    busy = np.bincount(wk, weights=plan.finish - plan.start, minlength=W)
    used = np.flatnonzero(busy > 0)
    if len(used) < 2:
        return []
    a_w, b_w = wk[graph.edge_src], wk[graph.edge_dst]
    across = a_w != b_w
    data = np.zeros((W, W))
    np.add.at(data, (a_w[across], b_w[across]), graph.edge_size[across])
    data += data.T
    moves: list[tuple[np.ndarray, int]] = []
    for a in used[np.argsort(busy[used] / cluster.speeds[used], kind="stable")][:limit].tolist():
        tasks = np.flatnonzero(wk == a)
        others = used[used != a]
        partners = others[np.argsort(-data[a, others], kind="stable")][:2].tolist()
        idlest = int(others[np.argmin(busy[others] / cluster.speeds[others])])
        for b in dict.fromkeys(partners + [idlest]):
            moves.append((tasks, int(b)))
    return moves


def _edge_moves(graph: TaskGraph, plan: ListResult, limit: int = 16,
                score: np.ndarray | None = None) -> list[tuple[np.ndarray, int]]:
    """For the heaviest edges that cross workers, move one endpoint's local group to the other.

    A local group is a connected set of tasks joined by edges that stay on one worker (a
    chain already kept together), so a move keeps it whole.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(graph)
    wk = plan.worker
    src, dst = graph.edge_src, graph.edge_dst
    local = wk[src] == wk[dst]
    adj = coo_matrix((np.ones(int(local.sum())), (src[local], dst[local])), shape=(n, n))
    _, group = connected_components(adj, directed=False)
    cross = np.flatnonzero(~local)
    cross = _heaviest(cross, graph.edge_size if score is None else score, limit)
    moves: list[tuple[np.ndarray, int]] = []
    for e in cross.tolist():
        u, v = int(src[e]), int(dst[e])
        moves.append((np.flatnonzero(group == group[v]), int(wk[u])))
        moves.append((np.flatnonzero(group == group[u]), int(wk[v])))
    return moves


def _chain_moves(graph: TaskGraph, cluster: Cluster, plan: ListResult, comm: np.ndarray
                 ) -> list[tuple[int, int]]:
    """Walk back from the last task along the latest data; pair each late cross-worker edge."""
    pred_ptr, pred_idx = graph.pred_ptr, graph.pred_idx
    worker, start, finish = plan.worker, plan.start, plan.finish
    moves: list[tuple[int, int]] = []
    i = int(np.argmax(finish))
    for _ in range(64):
        w, s = int(worker[i]), float(start[i])
        lo, hi = int(pred_ptr[i]), int(pred_ptr[i + 1])
        if lo == hi:
            break
        par = pred_idx[lo:hi]
        arrive = finish[par] + np.where(worker[par] != w, comm[lo:hi], 0.0)
        k = int(np.argmax(arrive))
        late, late_at = int(par[k]), float(arrive[k])
        lw = int(worker[late])
        if lw != w and late_at >= s - 1e-9 * max(1.0, s):
            moves += [(i, lw), (late, w)]
        i = late
    return moves


def _critical_moves(graph: TaskGraph, plan: ListResult, comm: np.ndarray, limit: int = 64
                    ) -> list[tuple[int, int]]:
    """Walk the critical path back from the last task (through the late data or the worker's
    previous task, whichever held it) and try each task on every parent's worker."""
    pred_ptr, pred_idx = graph.pred_ptr, graph.pred_idx
    worker, start, finish = plan.worker, plan.start, plan.finish
    # The task that started just before each one on its worker (-1: none).
    by_start = np.lexsort((start, worker))
    previous = np.full(len(worker), -1, dtype=np.int64)
    same = worker[by_start[1:]] == worker[by_start[:-1]]
    previous[by_start[1:][same]] = by_start[:-1][same]
    moves: dict[tuple[int, int], None] = {}
    i = int(np.argmax(finish))
    for _ in range(limit):
        w, s = int(worker[i]), float(start[i])
        lo, hi = int(pred_ptr[i]), int(pred_ptr[i + 1])
        par = pred_idx[lo:hi]
        for wj in worker[par].tolist():
            if wj != w:
                moves[(i, wj)] = None
        arrive = finish[par] + np.where(worker[par] != w, comm[lo:hi], 0.0)
        if len(par) and arrive.max() >= s - 1e-9 * max(1.0, s):
            i = int(par[np.argmax(arrive)])
        elif previous[i] >= 0 and start[previous[i]] < s:
            i = int(previous[i])  # not held by data: by the worker's previous task
        else:
            break
    return list(moves)


def _path_moves(graph: TaskGraph, plan: ListResult, limit: int = 12,
                score: np.ndarray | None = None) -> list[tuple[np.ndarray, int]]:
    """For the heaviest edges between workers, move the receiver and its heaviest same-worker
    path of successors to the sender's worker (and the sender with its heaviest same-worker
    path of predecessors to the receiver's): a chain kept together without its whole group."""
    wk = plan.worker
    src, dst = graph.edge_src, graph.edge_dst
    cross = np.flatnonzero(wk[src] != wk[dst])
    cross = _heaviest(cross, graph.edge_size if score is None else score, limit)

    def path(i: int, ptr: np.ndarray, idx: np.ndarray, size: np.ndarray) -> np.ndarray:
        out, w = [i], wk[i]
        while True:
            nb = idx[ptr[i]:ptr[i + 1]]
            same = np.flatnonzero(wk[nb] == w)
            if not len(same):
                return np.asarray(out)
            i = int(nb[same[np.argmax(size[ptr[i]:ptr[i + 1]][same])]])
            out.append(i)

    moves: list[tuple[np.ndarray, int]] = []
    for e in cross.tolist():
        u, v = int(src[e]), int(dst[e])
        moves.append((path(v, graph.succ_ptr, graph.succ_idx, graph.succ_size), int(wk[u])))
        moves.append((path(u, graph.pred_ptr, graph.pred_idx, graph.pred_size), int(wk[v])))
    return moves
