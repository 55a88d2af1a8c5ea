"""Costs that are the workload's: what a Dask graph's tasks will really cost, and how sure we are.

A graph loaded by :func:`~openautoglm.dask_graph.from_dask` starts with Dask's blanket guess
(``distributed.scheduler.unknown-task-duration``, 500 ms) on every task. :func:`estimate_costs`
replaces each guess with the best source it has, in this order::

    source           where it comes from                                 uncertainty (relative std)
    "history"        History: median (or a line in input size) per      its robust std / cost
                     key prefix, from earlier runs of this workload      (0.5 below 3 samples)
    "dask-measured"  the scheduler's TaskPrefix.duration_average: what   spread of max vs average,
                     Dask measured for this prefix on this cluster        at least 0.25
    "dask-default"   Dask's 500 ms guess: nothing is known               1.0 (untrustworthy)
    "data"           a literal in the graph (costs nothing to "run")     0

Edges get ``size`` in seconds: the source's output bytes (history's median output size, or
``sizeof`` of a literal) over the cluster's bandwidth (the scheduler's measured
``Scheduler.bandwidth``), unless history measured the transfer itself. The cluster's per-task
dispatch overhead is the time a worker thread loses per task to the scheduler round trip; the
planner adds it to every task. It is read from the previous run's own records
(:func:`observed_overhead`: the median idle gap between a thread's consecutive tasks), and only
when no run has shown it yet measured with a short probe of trivial tasks
(:func:`dispatch_overhead`).

:class:`CostSummary` condenses a graph's estimates into what the mode decision needs: the
share of the work whose cost is only guessed, and one cost-weighted uncertainty.
Read ``tests/engine/test_modes.py``.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from openautoglm.core.graph import TaskGraph

if TYPE_CHECKING:
    from openautoglm.history.store import History

__all__ = ["CostSummary", "dispatch_overhead", "estimate_costs", "observed_overhead",
           "prefix_durations", "with_costs"]

#: Relative uncertainty of a cost nothing is known about (Dask's default guess).
UNKNOWN = 1.0
#: Relative uncertainty of history estimates from fewer than 3 samples.
FEW_SAMPLES = 0.5
#: Least relative uncertainty of a Dask-measured prefix average (no spread is recorded).
DASK_MEASURED = 0.25


@dataclass
class CostSummary:
    """What a graph's cost estimates are worth.

    Attributes:
        sources: number of tasks per cost source (``"history"``, ``"dask-measured"``,
            ``"dask-default"``, ``"data"``).
        guessed_share: share of the tasks (literals excluded) costed by Dask's default guess.
        uncertainty: cost-weighted mean relative uncertainty of the tasks' costs (0 = exact,
            1 = nothing known).
        bandwidth: bytes per second used for edge sizes.
        seconds: time spent estimating.
    """

    sources: dict[str, int] = field(default_factory=dict)
    guessed_share: float = 1.0
    uncertainty: float = UNKNOWN
    bandwidth: float = 100e6
    seconds: float = 0.0

    @property
    def trustworthy(self) -> bool:
        """Every task has a cost that was measured (by history or by Dask on this cluster)."""
        return self.guessed_share == 0.0 and self.uncertainty < UNKNOWN

    def describe(self) -> str:
        """One line for a run report: sources and uncertainty."""
        src = ", ".join(f"{n} {s}" for s, n in sorted(self.sources.items()))
        return f"costs: {src}; uncertainty {self.uncertainty:.2f}"


def prefix_durations(dask_scheduler: Any, prefixes: list[str]) -> dict[str, Any]:
    """``client.run_on_scheduler`` target: Dask's measured durations of these key prefixes.

    Returns:
        ``{"bandwidth": bytes/s, "prefixes": {prefix: (average s, max s)}}`` for the prefixes
        Dask has measured on this cluster (compute time recorded).
    """
    out = {}
    for name in prefixes:
        tp = dask_scheduler.task_prefixes.get(name)
        if tp is None or tp.duration_average is None or tp.duration_average <= 0:
            continue
        if not tp._all_durations_us.get("compute"):
            continue  # seeded from configuration, never measured
        out[name] = (float(tp.duration_average), float(tp.max_exec_time))
    return {"bandwidth": float(dask_scheduler.bandwidth), "prefixes": out}


def _noop(*args: Any) -> int:
    return 0


def dispatch_overhead(client: Any, n: int = 200) -> float:
    """Measure the seconds a worker thread loses per task to Dask's dispatch.

    Runs ``n`` trivial independent tasks once (after a warm-up of 20) and spreads the wall time
    over the cluster's threads: ``wall * threads / n``. A simulated task that costs its compute
    time plus this overhead reproduces the throughput of the scheduler for small tasks.

    Args:
        client: a ``distributed.Client``.
        n: tasks in the probe.

    Returns:
        Seconds per task per thread.
    """
    from dask.base import tokenize

    info = client.sync(client.scheduler.identity, n_workers=-1)["workers"]
    threads = sum(w["nthreads"] for w in info.values())
    token = tokenize(time.time_ns())
    client.get({f"oag-probe-{token}-w{i}": (_noop, i) for i in range(20)},
               [f"oag-probe-{token}-w{i}" for i in range(20)])
    dsk = {f"oag-probe-{token}-{i}": (_noop, i) for i in range(n)}
    t = time.perf_counter()
    client.get(dsk, list(dsk))
    wall = time.perf_counter() - t
    return wall * max(1, threads) / n


def _literal_bytes(node: Any) -> float:
    from dask.sizeof import sizeof

    try:
        return float(sizeof(node.value))
    except Exception:
        return 0.0


def estimate_costs(graph: TaskGraph, client: Any = None, history: History | None = None, *,
                   copy: bool = True) -> tuple[TaskGraph, CostSummary]:
    """The graph with each task's best cost estimate and its uncertainty.

    Sets node attributes ``cost``, ``cost_source`` and ``cost_uncertainty`` (relative std),
    and edge ``size`` (seconds at bandwidth 1), as the module docstring describes.

    Args:
        graph: a :func:`~openautoglm.dask_graph.from_dask` graph.
        client: the cluster's client, for Dask's measured prefix durations and bandwidth
            (``None``: skip that source).
        history: earlier runs (``None``: skip that source).
        copy: leave ``graph`` untouched (``False``: update its node attributes in place,
            which saves a copy of a large graph that is thrown away anyway).

    Returns:
        ``(graph, summary)``.

    Example:
        >>> from operator import add
        >>> from openautoglm.engine.from_dask import from_dask
        >>> g, s = estimate_costs(from_dask({"x": 1, "y": (add, "x", 10)}))
        >>> g.nx.nodes["y"]["cost_source"], s.trustworthy
        ('dask-default', False)
    """
    t0 = time.perf_counter()
    G = graph.nx.copy() if copy else graph.nx
    measured: dict[str, tuple[float, float]] = {}
    bandwidth = 100e6
    if client is not None:
        prefixes = sorted({str(a.get("identity")) for _, a in G.nodes(data=True)})
        info = client.run_on_scheduler(prefix_durations, prefixes=prefixes)
        measured, bandwidth = info["prefixes"], info["bandwidth"] or bandwidth
    out_size: dict[str, float | None] = {}

    def output_size(ident: str) -> float | None:
        if ident not in out_size:
            out_size[ident] = history.output_size(ident) if history is not None else None
        return out_size[ident]

    cost = np.array(graph.cost, dtype=float)
    for i, k in enumerate(graph.tasks):
        a = G.nodes[k]
        ident = a.get("identity")
        if a.get("cost_source") == "data":
            a["cost_uncertainty"] = 0.0
            continue
        est = None
        if history is not None and ident is not None:
            size = a.get("input_size")
            if size is None:
                size = sum(o for o in (output_size(G.nodes[d].get("identity"))
                                       for d in G.predecessors(k)) if o is not None)
            est = history.estimate(ident, size)
        if est is not None:
            rel = est.std / est.cost if est.cost > 0 and math.isfinite(est.std) else math.inf
            unc = FEW_SAMPLES if est.n < 3 or not math.isfinite(rel) else min(0.99, rel)
            a.update(cost=est.cost, cost_std=est.std, cost_samples=est.n,
                     cost_source="history", cost_uncertainty=unc)
            a.pop("costs", None)
        elif a.get("cost_source") == "dask-default" and ident in measured:
            avg, mx = measured[ident]
            spread = (mx - avg) / avg if mx > avg > 0 else 0.0
            a.update(cost=avg, cost_source="dask-measured",
                     cost_uncertainty=min(0.99, max(DASK_MEASURED, spread)))
        else:
            a.setdefault("cost_uncertainty",
                         UNKNOWN if a.get("cost_source") == "dask-default" else FEW_SAMPLES)
        cost[i] = float(a["cost"])
    size = _edge_sizes(G, history, bandwidth, output_size)
    return (with_costs(graph, G, cost, size),
            _summary(G, bandwidth, time.perf_counter() - t0))


def with_costs(graph: TaskGraph, G: nx.DiGraph, cost: np.ndarray,
               edge_size: np.ndarray | None = None) -> TaskGraph:
    """``graph`` with new cost (and edge size) arrays, sharing its order and structure.

    The arrays are what :meth:`TaskGraph.from_networkx` would compute from ``G``'s attributes;
    reusing the topological order and the CSR structure keeps a 50,000-task graph's re-costing
    to milliseconds.
    """
    if not np.all(np.isfinite(cost)) or np.any(cost < 0):
        raise ValueError("estimated costs must be finite and >= 0")
    return TaskGraph(G, graph.tasks, cost, None, graph.parallel, graph.edge_src, graph.edge_dst,
                     graph.edge_size if edge_size is None else edge_size)


def _edge_sizes(G: nx.DiGraph, history: History | None, bandwidth: float,
                output_size: Any) -> np.ndarray:
    """Edge ``size`` in seconds (in ``G.edges`` order, as TaskGraph stores them)."""
    sizes = np.empty(G.number_of_edges())
    pair: dict[tuple[str, str], float | None] = {}
    for e, (u, v, a) in enumerate(G.edges(data=True)):
        src = G.nodes[u]
        seconds = None
        if history is not None:
            ids = (src.get("identity"), G.nodes[v].get("identity"))
            if ids not in pair:
                pair[ids] = history.transfer_time(*ids)
            seconds = pair[ids]
        if seconds is None:
            nbytes = None
            if src.get("cost_source") == "data" and "dask" in src:
                nbytes = _literal_bytes(src["dask"])
            elif src.get("identity") is not None:
                nbytes = output_size(src["identity"])
            seconds = float(nbytes) / bandwidth if nbytes else float(a.get("size", 0.0) or 0.0)
        a["size"] = sizes[e] = seconds
    return sizes


def _summary(G: nx.DiGraph, bandwidth: float, seconds: float) -> CostSummary:
    sources = Counter(a.get("cost_source", "given") for _, a in G.nodes(data=True))
    work = [(a["cost"], a["cost_uncertainty"]) for _, a in G.nodes(data=True)
            if a.get("cost_source") != "data"]
    guessed = sum(1 for _, a in G.nodes(data=True) if a.get("cost_source") == "dask-default")
    if work:
        c = np.array([w[0] for w in work], dtype=float)
        u = np.array([w[1] for w in work], dtype=float)
        unc = float(np.sum(c * u) / np.sum(c)) if c.sum() > 0 else float(u.mean())
    else:
        unc = 0.0
    return CostSummary(dict(sources), guessed / len(work) if work else 0.0, unc, bandwidth,
                       seconds)


def dask_order_priority(graph: TaskGraph) -> np.ndarray:
    """Priorities (higher runs earlier) of Dask's own static order, per task of ``graph``."""
    import dask.order

    dsk = {k: graph.nx.nodes[k]["dask"] for k in graph.tasks}
    order = dask.order.order(dsk)
    n = len(graph)
    return np.array([n - order[k] for k in graph.tasks], dtype=float)


def observed_overhead(times: list[dict[str, Any]], graph: TaskGraph,
                      threads: list[int]) -> float | None:
    """The dispatch overhead a finished run shows, from its own records (no probe).

    For each task that ran on a worker thread right after another task of the same thread,
    the idle gap between the two (from the later of the previous task's finish and the
    task's last dependency finishing) is time lost to dispatch. Returns the median gap over
    such tasks, or ``None`` with fewer than 10 of them. Threads of a worker are told apart by
    filling the first thread free before each start.

    Args:
        times: a RunResult's per-task rows (``task``, ``worker``, ``start``, ``finish``).
        graph: the run's graph (for dependencies).
        threads: threads per worker, in the rows' worker order.
    """
    finish = {t["task"]: t["finish"] for t in times if t.get("finish") is not None}
    by_worker: dict[int, list[dict[str, Any]]] = {}
    for t in times:
        if t.get("start") is not None and t.get("worker") is not None and t["worker"] >= 0:
            by_worker.setdefault(t["worker"], []).append(t)
    gaps = []
    for w, rows in by_worker.items():
        rows.sort(key=lambda t: t["start"])
        lanes = [-math.inf] * max(1, threads[w] if w < len(threads) else 1)
        for t in rows:
            j = max(range(len(lanes)), key=lambda i: lanes[i] if lanes[i] <= t["start"] + 1e-6
                    else -math.inf)
            prev = lanes[j]
            ready = max([finish.get(d, -math.inf) for d in graph.dependencies(t["task"])],
                        default=-math.inf)
            if prev > -math.inf:
                gaps.append(max(0.0, t["start"] - max(prev, ready)))
            lanes[j] = t["finish"]
    return float(np.median(gaps)) if len(gaps) >= 10 else None
