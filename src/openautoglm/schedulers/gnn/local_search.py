"""No-learning baseline: the best of K randomly perturbed HEFT rankings.

Every sample multiplies each task's upward rank by ``exp(sigma * N(0, 1))`` and hands the
result to the one list scheduler (:func:`openautoglm.simulate.list_schedule`); the sample with
the smallest simulated makespan wins. Sample 0 is HEFT's own ranking, so the search is never
worse than HEFT. The learned scheduler is trained to imitate the winners of this search
(``openautoglm.schedulers.gnn.training``) and the benchmark compares against it (``policy="heft_search"``).

::

    rank_u ──> rank_u * exp(sigma * z_k), k = 0..K-1 ──> list_schedule ──> min makespan

:func:`refine_placement` is the other search the learned scheduler uses: local moves of a
plan's placements (a task next to its late data, critical-path tasks onto their parents'
workers, a chain or local group kept on one worker across the heaviest cut edges, a lightly
used worker emptied, cheap-data tasks to idle workers), each one checked by the same list
scheduler. :func:`iterate_ranks` is iterative list scheduling: re-rank the tasks by the
plan's realised upward rank (its own run times, transfers only between workers) and schedule
again. :func:`iterated_search` strings them together within a budget of simulations:
descents of placement moves and re-ranking, then seeded kicks of the realised rank::

    plan ──descent (moves <-> re-rank)──> local optimum ──kick: rank * exp(sigma * z)──┐
                 ^                                                                    │
                 └────── re-rank, refine; keep when better ◄──────────────────────────┘

All of them simulate with :func:`~openautoglm.simulate.list_makespan` or its
:class:`~openautoglm.simulate.ListEvaluator` (arrays, no Schedule) and build the Schedule of
the winner only.

Tests: ``tests/schedulers/gnn/test_gnn.py`` (search never worse than HEFT, deterministic for a seed),
``tests/schedulers/gnn/test_local_search.py`` (the evaluator, the iterated search).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from openautoglm.core.costs import transfer_time, upward_rank
from openautoglm.simulate.list_scheduler import ListEvaluator

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.list_scheduler import ListResult

__all__ = ["better", "iterate_ranks", "iterated_search", "realised_rank", "refine_placement"]


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


def better(a: ListResult, b: ListResult) -> bool:
    """Whether plan ``a`` beats ``b``: a smaller makespan, or the same makespan (never a larger
    one) and a smaller total finish time, which walks the search off makespan plateaus."""
    if a.makespan < b.makespan * (1 - 1e-12):
        return True
    return a.makespan <= b.makespan and a.finish.sum() < b.finish.sum() * (1 - 1e-9)


def refine_placement(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                     shares: np.ndarray | None, budget: int,
                     evaluate: ListEvaluator | None = None, sweep: bool = False,
                     edge_score: np.ndarray | None = None
                     ) -> tuple[ListResult, np.ndarray, int]:
    """Local search over placements, each move checked by the list scheduler.

    Moves, in this order: empty one of the two least busy workers onto a worker it exchanges
    much data with (or the idlest one); walk back from the task that finishes last and,
    wherever a task waited for data from another worker, try that task on the sender's worker
    (and the sender on the task's worker); along the critical path (late data or the worker's
    previous task), try each task on its parents' workers; for the heaviest edges between
    workers, move one endpoint's local group (tasks joined by same-worker edges) to the other's
    worker, then only its heaviest same-worker path; offload the tasks with the least data per
    second of work to the least busy workers. Every other placement is kept (pins). Each try is
    one makespan-only list-scheduling call; a move that is :func:`better` (a shorter makespan,
    or the same and a smaller total finish time) is kept and the moves are listed again from
    the new plan (with ``sweep``, only once the list is done), until ``budget`` calls are
    spent or a whole list finds nothing.

    Args:
        graph: The task graph.
        cluster: The cluster.
        plan: The plan to improve (a :func:`~openautoglm.simulate.list_makespan` result).
        priority: The priority that produced it (reused for every try).
        shares: The shares that produced it, or ``None``.
        budget: Most list-scheduling calls to spend.
        evaluate: A :class:`~openautoglm.simulate.ListEvaluator` of the graph with these shares
            (made here when ``None``).
        sweep: Go on down the list after an accepted move (moves listed from the older plan)
            instead of listing them again from the new one.
        edge_score: Order of the cut edges the group and path moves try, per edge (graph
            edge order, highest first; e.g. the learned co-location probability times the
            transfer time); ``None``: heaviest data first.

    Returns:
        ``(best plan, its pins, list-scheduling calls spent)``: its Schedule is
        ``list_schedule(graph, cluster, priority, shares=shares, workers=pins)``. When no move
        helps, ``plan`` itself and its workers (then rebuild the Schedule the way ``plan``
        was made: pinning every task may plan the gaps differently).

    Example:
        >>> from openautoglm.core.loaders import random_dag
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> from openautoglm.simulate.list_scheduler import list_makespan, list_schedule
        >>> g, c = random_dag(40, ccr=10.0, seed=3), Cluster.homogeneous(4)
        >>> p = ranks(g, c).rank_u
        >>> r = list_makespan(g, c, p)
        >>> best, pins, spent = refine_placement(g, c, r, p, None, budget=32)
        >>> bool(best.makespan <= r.makespan)
        True
        >>> bool(list_schedule(g, c, p, workers=pins).makespan == best.makespan)
        True
    """
    ev = evaluate if evaluate is not None else ListEvaluator(graph, cluster, shares)
    prio = np.ascontiguousarray(priority, dtype=np.float64)
    comm = transfer_time(graph.pred_size, cluster)
    best = plan
    spent = 0
    # Tasks whose data is cheap to move compared with their run time are offloaded first.
    w_bar = np.asarray(graph.exec_time(cluster)).mean(axis=1)
    io = (np.bincount(graph.edge_src, weights=graph.edge_size, minlength=len(graph))
          + np.bincount(graph.edge_dst, weights=graph.edge_size, minlength=len(graph)))
    cheap_first = np.argsort(transfer_time(io, cluster) / np.maximum(w_bar, 1e-12), kind="stable")
    best_pins = np.asarray(plan.worker, dtype=np.int64)
    improved = True
    while improved and spent < budget:
        moves: list[tuple[Any, int]] = [*_merge_moves(graph, cluster, best),
                                           *_chain_moves(graph, cluster, best, comm),
                                           *_critical_moves(graph, best, comm),
                                           *_edge_moves(graph, best, score=edge_score),
                                           *_path_moves(graph, best, score=edge_score),
                                           *_offload_moves(cluster, best, cheap_first)]
        improved = False
        for i, w in moves:
            if spent >= budget:
                break
            if (best_pins[i] == w).all():
                continue  # an earlier move of this sweep already put it there
            trial = best_pins.copy()
            trial[i] = w
            spent += 1
            r = ev(prio, trial)
            if better(r, best):
                best, best_pins, improved = r, trial, True
                if not sweep:
                    break
    return best, best_pins, spent


def realised_rank(graph: TaskGraph, cluster: Cluster, plan: ListResult) -> np.ndarray:
    """Upward rank of a plan as it was realised: its run times, transfers only across workers."""
    across = plan.worker[graph.pred_idx] != np.repeat(plan.worker, np.diff(graph.pred_ptr))
    comm = np.where(across, transfer_time(graph.pred_size, cluster), 0.0)
    return upward_rank(graph, plan.finish - plan.start, comm)


def iterate_ranks(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                  shares: np.ndarray | None, pins: np.ndarray | None, rounds: int,
                  evaluate: ListEvaluator | None = None
                  ) -> tuple[ListResult, np.ndarray, np.ndarray | None]:
    """Iterative list scheduling: re-prioritise by the plan's realised upward rank.

    Each round ranks the tasks by the current best plan's own run times and transfers (zero
    between tasks on one worker) and simulates that priority with free placement and with
    the plan's workers kept; the better plan, if it improves, becomes the current one.

    Returns:
        ``(plan, priority, pins)`` of the best plan found (the input when nothing helps).
    """
    ev = evaluate if evaluate is not None else ListEvaluator(graph, cluster, shares)
    best = (plan, priority, pins)
    for _ in range(rounds):
        prio = realised_rank(graph, cluster, best[0])
        improved = False
        for trial in (None, np.asarray(best[0].worker, dtype=np.int64)):
            r = ev(prio, trial)
            if r.makespan < best[0].makespan * (1 - 1e-12):
                best, improved = (r, prio, trial), True
        if not improved:
            break
    return best


#: A plan with what produced it: (result, priority, pins or None).
_Plan = tuple["ListResult", np.ndarray, "np.ndarray | None"]


def _descend(graph: TaskGraph, cluster: Cluster, best: _Plan, shares: np.ndarray | None,
             budget: int, ev: ListEvaluator, rounds: int, sweep: bool,
             edge_score: np.ndarray | None = None) -> _Plan:
    """Placement moves alternating with re-ranking, within ``budget`` calls of ``ev``."""
    start = ev.calls

    def left() -> int:
        return budget - (ev.calls - start)

    for _ in range(rounds):
        before = best[0]
        if left() > 0:
            r, p, _ = refine_placement(graph, cluster, best[0], best[1], shares,
                                       min(left(), budget // 2), ev, sweep=sweep,
                                       edge_score=edge_score)
            if better(r, best[0]):
                best = (r, best[1], p)
        if left() > 2:
            best = iterate_ranks(graph, cluster, best[0], best[1], shares, best[2],
                                 min(4, (left() - 1) // 2), ev)
        if best[0] is before or left() <= 0:
            break
    return best


def iterated_search(graph: TaskGraph, cluster: Cluster, plan: ListResult, priority: np.ndarray,
                    shares: np.ndarray | None, pins: np.ndarray | None, budget: int,
                    seed: int = 0, sigma: float = 0.2, rounds: int = 8,
                    sweep: bool | None = None, edge_score: np.ndarray | None = None
                    ) -> tuple[ListResult, np.ndarray, np.ndarray | None, int]:
    """Iterated local search over priorities and placements, within ``budget`` simulations.

    First a descent: :func:`refine_placement` (each call at most half the descent's budget)
    alternating with :func:`iterate_ranks`, up to ``rounds`` times while either improves;
    with ``sweep=None`` two descents from ``plan`` (restarting after every accepted move, and
    sweeping on), each with half the budget plus what the first left, the better kept: which
    one wins depends on the graph. Then, until the budget is spent, kicks from the best plan
    found: its realised upward rank times ``exp(sigma * N(0, 1))`` per task, simulated with
    its placements kept and with free placement (the better of the two), re-ranked by
    :func:`iterate_ranks` and, when that beats the best, refined by a short sweep of
    :func:`refine_placement`; a kick that is :func:`better` becomes the best plan. Seeded:
    the same arguments give the same plan.

    Args:
        graph: The task graph.
        cluster: The cluster.
        plan: The plan to improve (a :func:`~openautoglm.simulate.list_makespan` result).
        priority: The priority that produced it.
        shares: The shares that produced it, or ``None`` (kept for every try).
        pins: The pins that produced it, or ``None``.
        budget: Most list-scheduling calls to spend (a deterministic work budget).
        seed: Seed of the kicks.
        sigma: Log-normal scale of the kicks.
        rounds: Most alternations of placement moves and re-ranking in a descent.
        sweep: The descent's mode (see :func:`refine_placement`); ``None``: both.
        edge_score: Order of the cut edges tried by the placement moves (see
            :func:`refine_placement`; ``None``: heaviest data first).

    Returns:
        ``(plan, priority, pins, calls spent)``: its Schedule is ``list_schedule(graph,
        cluster, priority, shares=shares, workers=pins)`` (the input when nothing helps).

    Example:
        >>> from openautoglm.core.loaders import random_dag
        >>> from openautoglm.core.cluster import Cluster
        >>> from openautoglm.core.costs import ranks
        >>> from openautoglm.simulate.list_scheduler import list_makespan, list_schedule
        >>> g, c = random_dag(40, ccr=10.0, seed=3), Cluster.homogeneous(4)
        >>> p = ranks(g, c).rank_u
        >>> r = list_makespan(g, c, p)
        >>> best, prio, pins, spent = iterated_search(g, c, r, p, None, None, budget=200)
        >>> bool(best.makespan <= r.makespan) and spent <= 200
        True
        >>> bool(list_schedule(g, c, prio, workers=pins).makespan == best.makespan)
        True
    """
    ev = ListEvaluator(graph, cluster, shares)
    n = len(graph)
    start = ev.calls

    def left() -> int:
        return budget - (ev.calls - start)

    best: _Plan = (plan, priority, pins)
    modes = (False, True) if sweep is None else (sweep,)
    for k, mode in enumerate(modes):
        cap = (budget - (ev.calls - start)) // (len(modes) - k)
        found = _descend(graph, cluster, (plan, priority, pins), shares, cap, ev, rounds, mode,
                         edge_score)
        if better(found[0], best[0]):
            best = found
    rng = np.random.default_rng(seed)
    while left() > 2:
        kicked = realised_rank(graph, cluster, best[0]) * np.exp(sigma * rng.standard_normal(n))
        kept = np.asarray(best[0].worker, dtype=np.int64)
        a, b = ev(kicked, kept), ev(kicked, None)
        trial: _Plan = (a, kicked, kept) if a.makespan <= b.makespan else (b, kicked, None)
        trial = iterate_ranks(graph, cluster, *trial[:2], shares, trial[2],
                              min(3, (left() - 1) // 2), ev)
        if trial[0].makespan < best[0].makespan and left() > 0:
            r, p, _ = refine_placement(graph, cluster, trial[0], trial[1], shares,
                                       min(left(), 32), ev, sweep=True, edge_score=edge_score)
            if better(r, trial[0]):
                trial = (r, trial[1], p)
        if better(trial[0], best[0]):
            best = trial
    return (*best, ev.calls - start)

