"""The training set of the scheduler GCN: generated DAGs and real traces, with search targets.

::

    FAMILIES (DAGGEN knobs) x sizes x CCR 0.1..10 x clusters of WORKERS (some multi-core)
    [+ WfFormat traces, <family>/*.json, at CCR 1 and 10]
        --teacher search (schedulers.gnn.targets, cached)--> Example per graph

Graph families (``FAMILIES``) are DAGGEN knob settings; ``holdout`` keeps some out of training
so the benchmark can report on unseen shapes. Real traces (``trace_dir``) join only when asked,
and ``exclude_families`` keeps a trace family out (leave-one-family-out). Everything drawn here
comes from one seed. Training itself is ``schedulers.gnn.training``.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.cluster import Cluster
from openautoglm.core.loaders import load_wfcommons, random_dag
from openautoglm.schedulers.gnn.targets import cached_target

if TYPE_CHECKING:
    from openautoglm.core.graph import TaskGraph

__all__ = ["FAMILIES", "DEFAULT_HOLDOUT", "CCRS", "WORKERS", "Example", "make_examples"]

#: DAGGEN knobs of each generated graph family.
FAMILIES: dict[str, dict[str, float]] = {
    "layered": {"fat": 0.5, "density": 0.5, "regularity": 0.5, "jump": 1},
    "narrow": {"fat": 0.3, "density": 0.3, "regularity": 0.8, "jump": 1},
    "wide": {"fat": 0.8, "density": 0.3, "regularity": 0.5, "jump": 1},
    "dense": {"fat": 0.5, "density": 0.9, "regularity": 0.2, "jump": 1},
    "jumpy": {"fat": 0.5, "density": 0.5, "regularity": 0.5, "jump": 3},
}
#: Families kept out of training by default (reported separately by the benchmark).
DEFAULT_HOLDOUT: tuple[str, ...] = ("jumpy",)
CCRS: tuple[float, ...] = (0.1, 1.0, 10.0)
WORKERS: tuple[int, ...] = (2, 4, 8, 16)


class Example(NamedTuple):
    """One training graph with its search target.

    Attributes:
        graph: The task graph.
        cluster: The cluster it is planned on.
        target: The teacher's realised order (its plan's realised upward rank, per task).
        share: Best shares found by the search, or ``None`` on one-core workers (no choice).
        heft: HEFT's makespan (the reward scale).
        best: The teacher's makespan.
        source: Family name (``"layered"``, ..., or ``"trace:<family>"``).
        colocated: 1.0 per edge whose endpoints share a worker in the teacher's plan.
    """

    graph: TaskGraph
    cluster: Cluster
    target: np.ndarray
    share: np.ndarray | None
    heft: float
    best: float
    source: str
    colocated: np.ndarray | None = None


def _clusters(rng: np.random.Generator) -> Cluster:
    w = int(rng.choice(WORKERS))
    if rng.random() < 0.5:
        return Cluster.homogeneous(w)
    return Cluster(speeds=rng.choice([1.0, 2.0, 4.0], size=w).tolist())


def make_examples(
    n_graphs: int,
    seed: int = 0,
    sizes: tuple[int, int] = (30, 150),
    holdout: Sequence[str] = DEFAULT_HOLDOUT,
    samples: int = 64,
    trace_dir: str | Path | None = None,
    exclude_families: Sequence[str] = (),
    max_trace_tasks: int = 400,
    multicore: float = 0.3,
    log: Callable[[str], None] | None = None,
    cache_dir: str | Path | None = None,
) -> list[Example]:
    """Generate training graphs and their search targets.

    Args:
        n_graphs: Number of generated graphs.
        seed: Seed of everything drawn here.
        sizes: (min, max) number of tasks of a generated graph.
        holdout: Generated families left out.
        samples: Share vectors tried per graph on multi-core workers.
        trace_dir: Folder of WfFormat traces (``<family>/*.json``) to add, or ``None``.
        exclude_families: Trace families left out (e.g. the one a benchmark tests on).
        max_trace_tasks: Traces larger than this are skipped (search cost).
        multicore: Fraction of generated graphs given parallel fractions and multi-core
            workers (where the share head has something to learn).
        log: Progress callback.
        cache_dir: Folder caching the teacher's targets (``None``: no cache).

    Returns:
        The examples, generated graphs first.

    Raises:
        ValueError: If every family is held out, or ``trace_dir`` is not a folder.
    """
    unknown = set(holdout) - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown holdout families {sorted(unknown)}; choose from {sorted(FAMILIES)}")
    families = [f for f in FAMILIES if f not in set(holdout)]
    if not families:
        raise ValueError(f"every family is held out ({list(holdout)}); keep at least one of {list(FAMILIES)}")
    rng = np.random.default_rng(seed)
    pairs: list[tuple[TaskGraph, Cluster, str]] = []
    for _ in range(n_graphs):
        fam = families[int(rng.integers(len(families)))]
        knobs = FAMILIES[fam]
        n = int(rng.integers(sizes[0], sizes[1] + 1))
        ccr = float(10 ** rng.uniform(-1, 1)) if rng.random() < 0.4 else float(rng.choice(CCRS))
        g = random_dag(n, fat=knobs["fat"], density=knobs["density"], regularity=knobs["regularity"],
                       jump=int(knobs["jump"]), ccr=ccr, seed=int(rng.integers(2**31)))
        cl = _clusters(rng)
        if rng.random() < multicore:
            G = g.nx.copy()
            for key, p in zip(g.tasks, rng.beta(0.7, 0.7, size=len(g)).tolist()):
                G.nodes[key]["parallel"] = p
            g = g.from_networkx(G)
            cl = Cluster(speeds=cl.speeds, bandwidth=cl.bandwidth,
                         cores=int(rng.choice([2, 4, 8])))
        pairs.append((g, cl, fam))
    if trace_dir is not None:
        root = Path(trace_dir)
        if not root.is_dir():
            raise ValueError(f"trace_dir {root} is not a folder of <family>/*.json WfFormat traces")
        for fam_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            if fam_dir.name in set(exclude_families):
                continue
            for path in sorted(fam_dir.glob("*.json")):
                g = load_wfcommons(path)
                if len(g) > max_trace_tasks or len(g.edge_src) == 0:
                    continue
                for ccr in (1.0, 10.0):
                    pairs.append((g.with_ccr(ccr), Cluster.homogeneous(4), f"trace:{fam_dir.name}"))
    out = []
    t0 = time.perf_counter()
    for k, (g, c, src) in enumerate(pairs):
        t = cached_target(g, c, int(rng.integers(2**31)), samples, cache_dir)
        out.append(Example(g, c, t.order, t.share, t.heft, t.best, src, t.colocated))
        if log and (k + 1) % 50 == 0:
            log(f"  targets {k + 1}/{len(pairs)} ({time.perf_counter() - t0:.0f} s)")
    return out
