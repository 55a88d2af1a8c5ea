"""The model-guided search of the default ``policy="gnn"``: from the one-shot plan, a budget of calls.

::

    one-shot plan (decode: free placement + the edge head's clusters, <= 4 calls)
    heft, serial on the fastest worker (1 call each: the plan is never worse than either)
        |  the best of them
        v
    fast paths: a plan at the lower bound is optimal (stop); graphs of <= TINY_UP_TO tasks
        are only re-ranked by their realised upward rank (at most TINY_BUDGET calls, no
        placement search)
        v
    iterated local search (local_search.iterated_search) within guided_budget(n) calls, its cut
    edges tried in the order of the model's expected gain: P(co-located) x transfer time

The budget is a count of list-scheduling calls, so a plan is deterministic for a seed. With an
untrained model (``GNNScheduler(weights="untrained")``: HEFT's ranks, no co-location learned,
full shares) the same code starts from HEFT's plan and tries cut edges heaviest first: the
control every claim about learning is measured against.

Tests: ``tests/schedulers/gnn/test_decode.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm._progress import report
from openautoglm.schedulers.gnn.decode import decode
from openautoglm.schedulers.gnn.local_search import better, iterate_ranks, iterated_search
from openautoglm.simulate.list_scheduler import ListEvaluator
from openautoglm.simulate.schedule import lower_bound

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.costs import Ranks
    from openautoglm.core.graph import TaskGraph
    from openautoglm.simulate.list_scheduler import ListResult

__all__ = ["GUIDED_WORK", "TINY_BUDGET", "TINY_UP_TO", "Guided", "guided_budget", "guided_search"]

#: The search's budget is about GUIDED_WORK / n list-scheduling calls (within
#: [GUIDED_MIN, GUIDED_MAX]): each call costs about n, so planning time is flat in n.
GUIDED_WORK = 24_000
GUIDED_MIN, GUIDED_MAX = 24, 240

#: Graphs of at most TINY_UP_TO tasks are only re-ranked (iterative list scheduling, at most
#: TINY_BUDGET calls: a few milliseconds), never searched.
TINY_UP_TO = 20
TINY_BUDGET = 6


class Guided(NamedTuple):
    """The guided search's result.

    Attributes:
        name: How the winner was found (``"learned"``, ``"heft"``, ``"serial"``,
            ``"learned clusters(k=...)"``, with ``"+search"`` when the search improved it).
        result: The winner's simulated plan.
        priority: Its priority.
        shares: Its shares (``None``: one core per task).
        pins: Its pins (``None``: free placement).
        makespans: Makespan of every plan considered, by name.
        calls: List-scheduling calls spent.
    """

    name: str
    result: ListResult
    priority: np.ndarray
    shares: np.ndarray | None
    pins: np.ndarray | None
    makespans: dict[str, float]
    calls: int


def guided_budget(n: int) -> int:
    """List-scheduling calls the guided search may spend on a graph of ``n`` tasks."""
    if n <= TINY_UP_TO:
        return TINY_BUDGET
    return max(GUIDED_MIN, min(GUIDED_MAX, GUIDED_WORK // max(n, 1)))


def guided_search(graph: TaskGraph, cluster: Cluster, r: Ranks, priority: np.ndarray,
                  share: np.ndarray | None, prob: np.ndarray | None, budget: int,
                  seed: int = 0) -> Guided:
    """Decode the model's plan, keep the best of it, HEFT and serial, and search from there.

    Args:
        graph: The task graph.
        cluster: The cluster.
        r: The graph's ranks.
        priority: Learned priority per task.
        share: Learned share per task (``None``: one core each).
        prob: Learned co-location probability per edge (``None``: none learned).
        budget: Most list-scheduling calls of the search (the decoder's and the two safety
            plans' calls come on top: at most 6).
        seed: Seed of the search's kicks.

    Returns:
        The :class:`Guided` winner.
    """
    ev = ListEvaluator(graph, cluster, share)
    dec = decode(graph, cluster, r, priority, share, prob, evaluate=ev)
    plans: dict[str, tuple[ListResult, np.ndarray, np.ndarray | None, np.ndarray | None]] = {
        dec.name: (dec.result, dec.priority, share, dec.pins)}
    plain = ListEvaluator(graph, cluster, None)
    rank_u = np.ascontiguousarray(r.rank_u, dtype=np.float64)
    plans["heft"] = (plain(rank_u, None), rank_u, None, None)
    n = len(graph)
    if cluster.n_workers > 1 and n:
        fastest = int(np.argmin(np.asarray(graph.exec_time(cluster)).sum(axis=0)))
        pins = np.full(n, fastest, dtype=np.int64)
        plans["serial"] = (plain(rank_u, pins), rank_u, None, pins)
    makespans = {k: v[0].makespan for k, v in plans.items()}
    name = min(makespans, key=makespans.__getitem__)  # the first of equals: the learned plan
    best = plans[name]
    calls = ev.calls + plain.calls
    if n == 0 or cluster.n_workers < 2 or best[0].makespan <= lower_bound(graph, cluster) * (1 + 1e-9):
        return Guided(name, *best, makespans, calls)
    if n <= TINY_UP_TO:
        ev2 = ListEvaluator(graph, cluster, best[2])
        res, prio, pins = iterate_ranks(graph, cluster, best[0], best[1], best[2], best[3],
                                        max(0, min(budget, TINY_BUDGET)) // 2, ev2)
        spent = ev2.calls
    else:
        report(0, budget)  # the search's own evaluator counts its calls against the budget
        score = None if prob is None else prob * np.asarray(r.comm, dtype=np.float64)
        res, prio, pins, spent = iterated_search(graph, cluster, best[0], best[1], best[2],
                                                 best[3], budget, seed=seed, edge_score=score)
    calls += spent
    if better(res, best[0]):
        name = f"{name}+{'iterated' if n <= TINY_UP_TO else 'search'}"
        best = (res, prio, best[2], pins)
        makespans[name] = res.makespan
    return Guided(name, *best, makespans, calls)
