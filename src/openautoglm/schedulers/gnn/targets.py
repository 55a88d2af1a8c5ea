"""Training targets from the search's winning plans (the teacher of the GCN's three heads).

::

    graph, cluster --GNNScheduler(weights="untrained", candidates="all", refine=TEACHER_REFINE)-->
        the winning plan (worker, start, finish per task)
            |-- colocated[e] = worker[src] == worker[dst]        -> edge head (cross-entropy)
            |-- order = the plan's realised upward rank          -> priority head (ListMLE)
    multi-core workers: best of `samples` random share vectors   -> share head (squared error)

The teacher never reads trained weights (its model is the untrained control), so targets do
not depend on the shipped weights. Targets are pure functions of the graph, the cluster and
the seed; :func:`cached_target` stores them as ``.npz`` arrays (no pickle) keyed by a hash of
exactly those inputs, so several training runs on the same graphs search once.

Tests: ``tests/schedulers/gnn/test_decode.py``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.costs import ranks
from openautoglm.schedulers.gnn.local_search import realised_rank
from openautoglm.schedulers.gnn.scheduler import GNNScheduler
from openautoglm.schedulers.gnn.weights import untrained_model
from openautoglm.simulate.list_scheduler import ListResult, list_makespan

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph

__all__ = ["TEACHER_REFINE", "Target", "cached_target", "search_target"]

#: Calls of one descent of the teacher's local search (GNNScheduler's ``refine``).
TEACHER_REFINE = 64

#: Bumped whenever the targets' definition changes (part of the cache key).
_VERSION = 1


class Target(NamedTuple):
    """What the teacher's winning plan says about one graph.

    Attributes:
        order: The winner's realised upward rank per task (higher: earlier).
        colocated: 1.0 where an edge's endpoints share a worker in the winner, else 0.0.
        share: Best share per task on multi-core workers, else ``None``.
        heft: HEFT's makespan.
        best: The teacher's makespan.
    """

    order: np.ndarray
    colocated: np.ndarray
    share: np.ndarray | None
    heft: float
    best: float


def search_target(graph: TaskGraph, cluster: Cluster, seed: int, samples: int = 64) -> Target:
    """Run the teacher search on one graph and read its targets off the winner.

    Args:
        graph: The task graph.
        cluster: The cluster.
        seed: Seed of the search (its kicks) and of the share sampling.
        samples: Share vectors tried on multi-core workers.

    Returns:
        The :class:`Target`.
    """
    teacher = GNNScheduler(model=untrained_model(), candidates="all", refine=TEACHER_REFINE,
                           seed=seed)
    plan = teacher.plan(graph, cluster)
    pl = [plan.schedule.placements[k] for k in graph.tasks]
    worker = np.array([p.worker for p in pl], dtype=np.int64)
    start = np.array([p.start for p in pl], dtype=np.float64)
    finish = np.array([p.finish for p in pl], dtype=np.float64)
    result = ListResult(float(finish.max()) if len(pl) else 0.0, worker, start, finish)
    order = realised_rank(graph, cluster, result) if len(pl) else np.zeros(0)
    colocated = (worker[graph.edge_src] == worker[graph.edge_dst]).astype(np.float64)
    rank_u = ranks(graph, cluster).rank_u
    heft = list_makespan(graph, cluster, rank_u).makespan
    share = _share_target(graph, cluster, rank_u, seed, samples)
    return Target(order, colocated, share, float(heft), float(result.makespan))


def _share_target(graph: TaskGraph, cluster: Cluster, rank_u: np.ndarray, seed: int,
                  samples: int) -> np.ndarray | None:
    """Best of ``samples`` share vectors (full, structured by the parallel fraction, random)."""
    if int(np.max(cluster.cores)) <= 1:
        return None
    rng = np.random.default_rng(seed)
    n = len(graph)
    best = (list_makespan(graph, cluster, rank_u, shares=np.full(n, 0.05)).makespan,
            np.full(n, 0.05))
    for k in range(1, samples):
        if k == 1:
            share = np.ones(n)
        elif rng.random() < 0.5:  # structured: more cores for more parallel tasks
            share = np.clip(graph.parallel ** rng.uniform(0.3, 3.0) * rng.uniform(0.3, 1.5),
                            0.05, 1.0)
        else:
            share = rng.uniform(0.05, 1.0, size=n)
        m = list_makespan(graph, cluster, rank_u, shares=share).makespan
        if m < best[0]:
            best = (m, share)
    return best[1]


def _key(graph: TaskGraph, cluster: Cluster, seed: int, samples: int) -> str:
    h = hashlib.sha256()
    for a in (np.asarray(graph.exec_time(cluster), dtype=np.float64), graph.parallel,
              graph.edge_src, graph.edge_dst, graph.edge_size, cluster.cores):
        h.update(np.ascontiguousarray(a).tobytes())
        h.update(b"|")
    h.update(repr((float(cluster.bandwidth), seed, samples, TEACHER_REFINE, _VERSION)).encode())
    return h.hexdigest()[:24]


def cached_target(graph: TaskGraph, cluster: Cluster, seed: int, samples: int = 64,
                  cache_dir: str | Path | None = None) -> Target:
    """:func:`search_target`, read from / written to ``cache_dir`` when given (``.npz``)."""
    if cache_dir is None:
        return search_target(graph, cluster, seed, samples)
    path = Path(cache_dir) / f"{_key(graph, cluster, seed, samples)}.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        share = z["share"] if z["has_share"] else None
        return Target(z["order"], z["colocated"], share, float(z["heft"]), float(z["best"]))
    t = search_target(graph, cluster, seed, samples)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, order=t.order, colocated=t.colocated,
             share=t.share if t.share is not None else np.zeros(0),
             has_share=t.share is not None, heft=t.heft, best=t.best)
    tmp.replace(path)
    return t
