"""Plan or step aside: how ``oag.compute`` chooses, per run, how much of a plan Dask follows.

Three modes, from most to least control::

    "strict"      priorities + a strict ``workers=`` pin per task (the plan's placement;
                  never stolen). Pays off only when placement matters and the costs are sure.
    "priorities"  the plan's order as Dask priorities only: Dask still places tasks by data
                  locality and work stealing still balances the load (soft: a wrong order
                  costs little).
    "dask"        step aside: the graph goes to Dask as ``dask.compute`` would send it (only
                  a run tag for the recorder is added).

The decision (:func:`decide`) compares three simulated makespans of the same graph, all on the
workload's own costs plus the cluster's measured per-task dispatch overhead, with a free worker
thread always taking the ready task of highest priority (no gap filling, as Dask does):
``dask`` (Dask's static ``dask.order``), ``priorities`` (the plan's order) and ``strict`` (the
plan's order and workers). A mode is chosen over stepping aside only when its predicted gain
beats the estimate's uncertainty ``u`` (cost-weighted relative std, :mod:`.estimate`)::

    priorities  if  gain_p > 0.05 + u / 2
    strict      if  gain_s > 0.05 + u  and  gain_s > gain_p + 0.05, and the graph holds no
                peer-to-peer shuffle or rechunk (Dask's P2P places those tasks itself)
    dask        otherwise, and always when some task's cost is only Dask's 500 ms guess
                (no history and nothing Dask measured on this cluster)

(planning time is spent by then: it is reported, not weighed; the plan cache makes
repeated runs cheap). The decision and its reason
land in the :class:`~openautoglm.report.RunResult` (``result.decision``) and in the history
(:func:`decisions`).

Plans are cached per graph shape (:class:`PlanCache`: the tasks' prefixes and dependency
structure, the policy, the workers) while every prefix's cost stays within a factor of 2 of
what the plan was made for: a repeated ``compute`` of the same collection plans once. Read ``tests/engine/test_modes.py``.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from openautoglm.engine.estimate import (CostSummary, dask_order_priority, dispatch_overhead,
                                         estimate_costs, observed_overhead, with_costs)
from openautoglm.engine.from_dask import collections_to_dsk, from_dask
from openautoglm.schedulers import schedule
from openautoglm.simulate import Schedule, list_makespan, list_schedule

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.engine.engine import Engine
    from openautoglm.core.graph import TaskGraph
    from openautoglm.history.store import History

__all__ = ["MODES", "Decision", "PlanCache", "decide", "decisions", "plan_for_mode",
           "compute_collections"]

MODES = ("auto", "strict", "priorities", "dask")
#: Least predicted gain (fraction of Dask's makespan) worth any intervention.
MIN_GAIN = 0.05


@dataclass
class Decision:
    """Which mode a run used, and why.

    Attributes:
        mode: ``"strict"``, ``"priorities"`` or ``"dask"``.
        reason: one sentence with the numbers behind the choice.
        requested: the mode asked for (``"auto"`` unless forced).
        predicted: simulated makespans (seconds) per mode, on the estimated costs.
        uncertainty: the estimates' cost-weighted relative uncertainty.
        costs: where the costs came from (:meth:`CostSummary.describe`).
        overhead: measured dispatch overhead per task and thread (seconds; ``None`` if not
            measured).
        planning_seconds: estimating + planning + deciding.
        cached: the plan came from the cache (same graph shape as an earlier run).
        corrections: what the drift watcher did during the run (released pins, ...).
        observed_overhead: the dispatch overhead this run showed (its idle gaps between
            tasks; ``None`` for too few), used by the next plan.
    """

    mode: str
    reason: str
    requested: str = "auto"
    predicted: dict[str, float] = field(default_factory=dict)
    uncertainty: float = 1.0
    costs: str = ""
    overhead: float | None = None
    planning_seconds: float = 0.0
    cached: bool = False
    corrections: list[str] = field(default_factory=list)
    observed_overhead: float | None = None

    def gain(self, mode: str | None = None) -> float:
        """Predicted gain of ``mode`` (default: the chosen one) over Dask's own order."""
        p = self.predicted
        m = mode or self.mode
        if "dask" not in p or m not in p or p["dask"] <= 0:
            return 0.0
        return 1.0 - p[m] / p["dask"]

    def __str__(self) -> str:
        return f"{self.mode}: {self.reason}"


def decide(predicted: dict[str, float], uncertainty: float,
           requested: str = "auto") -> tuple[str, str]:
    """Choose a mode from simulated makespans (see the module docstring).

    Args:
        predicted: ``{"dask": s, "priorities": s, "strict": s}``.
        uncertainty: relative uncertainty of the costs.
        requested: ``"auto"``, or a forced mode (returned with the reason "forced").

    Returns:
        ``(mode, reason)``.

    Example:
        >>> decide({"dask": 10.0, "priorities": 8.0, "strict": 7.9}, uncertainty=0.1)[0]
        'priorities'
        >>> decide({"dask": 10.0, "priorities": 9.8, "strict": 9.7}, uncertainty=0.1)[0]
        'dask'
    """
    d, p, s = predicted["dask"], predicted["priorities"], predicted["strict"]
    gp, gs = 1 - p / d if d > 0 else 0.0, 1 - s / d if d > 0 else 0.0
    need_p, need_s = MIN_GAIN + uncertainty / 2, MIN_GAIN + uncertainty
    nums = (f"predicted {d:.3g} s with Dask's order, {p:.3g} s with the plan's priorities "
            f"({gp:+.0%}), {s:.3g} s pinned ({gs:+.0%}); uncertainty {uncertainty:.2f}")
    if requested != "auto":
        return requested, f"forced by mode={requested!r}; {nums}"
    if gs > need_s and gs > gp + MIN_GAIN:
        return "strict", f"pins gain {gs:.0%} > {need_s:.0%} needed; {nums}"
    if gp > need_p:
        return "priorities", f"priorities gain {gp:.0%} > {need_p:.0%} needed; {nums}"
    best = max(gp, gs)
    return "dask", (f"stepped aside: best predicted gain {best:.0%} does not beat the "
                    f"{need_p:.0%} the uncertainty asks for; {nums}")


# -- the plan cache ------------------------------------------------------------------------


def shape_signature(graph: TaskGraph) -> str:
    """A digest of the graph's shape: prefixes in task order and the dependency structure.

    Two builds of the same collection (even with new random key tokens, as non-pure delayed
    calls get) share it; their tasks correspond by position.
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(graph.pred_ptr).tobytes())
    h.update(np.ascontiguousarray(graph.pred_idx).tobytes())
    h.update("\x00".join(str(graph.nx.nodes[k].get("identity", "")) for k in graph.tasks).encode())
    return h.hexdigest()


def prefix_costs(graph: TaskGraph) -> dict[str, float]:
    """Median cost per key prefix: what a cached plan was made for."""
    by_prefix: dict[str, list[float]] = {}
    for i, k in enumerate(graph.tasks):
        by_prefix.setdefault(str(graph.nx.nodes[k].get("identity", "")), []).append(graph.cost[i])
    return {p: float(np.median(c)) for p, c in by_prefix.items()}


def still_valid(planned: dict[str, float], now: dict[str, float], factor: float = 2.0) -> bool:
    """A plan stays valid while every prefix's cost is within ``factor`` of the planned one.

    Example:
        >>> still_valid({"a": 1.0, "b": 0.1}, {"a": 1.5, "b": 0.06})
        True
        >>> still_valid({"a": 1.0}, {"a": 2.5})
        False
    """
    for p, c in now.items():
        old = planned.get(p)
        if old is None:
            return False
        lo, hi = sorted((max(old, 1e-9), max(c, 1e-9)))
        if hi / lo > factor:
            return False
    return True


@dataclass
class _Cached:
    priority: np.ndarray        # per task position: the plan's priority (higher first)
    workers: np.ndarray         # per task position: the plan's worker
    dask_priority: np.ndarray   # per task position: dask.order's priority
    plan_seconds: float
    costs: dict[str, float]     # median cost per prefix the plan was made for


class PlanCache:
    """Plans per (graph shape, policy, workers); bounded, oldest dropped first.

    A plan is reused while the costs it was made for still hold (:func:`still_valid`).
    """

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._plans: dict[tuple[Any, ...], _Cached] = {}
        self.hits = self.misses = 0

    def get(self, key: tuple[Any, ...], costs: dict[str, float]) -> _Cached | None:
        hit = self._plans.get(key)
        if hit is not None and not still_valid(hit.costs, costs):
            hit = None
        if hit is None:
            self.misses += 1
        else:
            self.hits += 1
        return hit

    def put(self, key: tuple[Any, ...], value: _Cached) -> None:
        self._plans[key] = value
        while len(self._plans) > self.size:
            self._plans.pop(next(iter(self._plans)))


def _cache(engine: Engine) -> PlanCache:
    cache = getattr(engine, "_plan_cache", None)
    if cache is None:
        cache = engine._plan_cache = PlanCache()
    return cache


def _overhead(engine: Engine, cluster: Cluster, history: History | None) -> float:
    """The cluster's dispatch overhead: measured once per engine, or the last one measured
    on a cluster of the same shape (workers and threads) in ``history``."""
    o = getattr(engine, "_dispatch_overhead", None)
    if o is None and history is not None:
        o = _remembered_overhead(history, cluster)
    if o is None:
        o = dispatch_overhead(engine.client, n=100)
    engine._dispatch_overhead = o
    return o


def _remembered_overhead(history: History, cluster: Cluster) -> float | None:
    shape = ",".join(str(int(c)) for c in cluster.cores)
    with history._lock:
        history._conn.execute(_TABLE)
        row = history._conn.execute(
            "SELECT overhead FROM oag_decisions WHERE overhead IS NOT NULL AND cluster = ? "
            "ORDER BY rowid DESC LIMIT 1", (shape,)).fetchone()
    return float(row[0]) if row else None


# -- planning for a mode -------------------------------------------------------------------


def _with_overhead(graph: TaskGraph, overhead: float) -> TaskGraph:
    """The graph with the dispatch overhead added to every task that runs."""
    runs = np.array([graph.nx.nodes[k].get("cost_source") != "data" for k in graph.tasks])
    return with_costs(graph, graph.nx, np.asarray(graph.cost) + overhead * runs)


def plan_for_mode(engine: Engine, graph: TaskGraph, cluster: Cluster, policy: str,
                  summary: CostSummary, requested: str = "auto", history: History | None = None,
                  ) -> tuple[TaskGraph, Schedule, Decision]:
    """Estimate, plan (or take the cached plan) and decide the mode for one run.

    Args:
        engine: the engine (its client measures the dispatch overhead; it holds the cache).
        graph: the graph with estimated costs (:func:`~.estimate.estimate_costs`).
        cluster: the workers as a Cluster.
        policy: the scheduling policy.
        summary: the estimates' summary.
        requested: ``"auto"`` or a forced mode.
        history: where an earlier measurement of the dispatch overhead may be.

    Returns:
        ``(graph, schedule, decision)``; the schedule is empty when the mode is ``"dask"``
        without a plan.
    """
    t0 = time.perf_counter()
    if requested == "dask" or (requested == "auto" and not summary.trustworthy):
        n_guess = summary.sources.get("dask-default", 0)
        reason = ("forced by mode='dask'" if requested == "dask" else
                  f"stepped aside: {n_guess} of {sum(summary.sources.values())} tasks are costed "
                  "by Dask's 0.5 s default guess (no history, nothing measured on this "
                  "cluster), so no plan can be trusted over Dask's own scheduling")
        return graph, Schedule(graph, cluster), Decision(
            "dask", reason, requested, uncertainty=summary.uncertainty, costs=summary.describe(),
            planning_seconds=time.perf_counter() - t0 + summary.seconds)
    overhead = _overhead(engine, cluster, history)
    g = _with_overhead(graph, overhead)
    key = (shape_signature(g), policy, tuple(cluster.cores.tolist()),
           tuple(np.asarray(cluster.speeds).tolist()))
    costs = prefix_costs(graph)  # the estimates themselves, not the overhead measured lately
    cache = _cache(engine)
    hit = cache.get(key, costs)
    cached = hit is not None
    if hit is None:
        t = time.perf_counter()
        plan = schedule(g, cluster, policy=policy)
        order = {k: i for i, k in enumerate(plan.start_order())}
        n = len(g)
        hit = _Cached(np.array([n - order[k] for k in g.tasks], dtype=float),
                      np.array([plan.placements[k].worker for k in g.tasks], dtype=np.int64),
                      dask_order_priority(g), time.perf_counter() - t, costs)
        cache.put(key, hit)
    predicted = {
        "dask": list_makespan(g, cluster, hit.dask_priority, insertion=False).makespan,
        "priorities": list_makespan(g, cluster, hit.priority, insertion=False).makespan,
        "strict": list_makespan(g, cluster, hit.priority, workers=hit.workers,
                                insertion=False).makespan,
    }
    spent = time.perf_counter() - t0 + summary.seconds
    mode, reason = decide(predicted, summary.uncertainty, requested)
    if mode == "strict" and uses_p2p(graph):
        mode, reason = "priorities", ("P2P shuffle/rechunk tasks place themselves, so pins "
                                      f"are off (priorities only); {reason}")
    if mode == "dask":
        plan = Schedule(g, cluster)
    else:
        # The plan Dask is asked to follow, as it would realise it (no gap filling).
        plan = list_schedule(g, cluster, hit.priority,
                             workers=hit.workers if mode == "strict" else None, insertion=False)
    return g, plan, Decision(mode, reason, requested, predicted, summary.uncertainty,
                             summary.describe(), overhead, time.perf_counter() - t0 + summary.seconds,
                             cached=cached)


def uses_p2p(graph: TaskGraph) -> bool:
    """Whether the graph holds a peer-to-peer shuffle or rechunk (Dask places those tasks)."""
    try:
        from distributed.shuffle._core import P2PBarrierTask
    except ImportError:  # pragma: no cover - older or newer distributed
        return any("p2p" in str(graph.nx.nodes[k].get("identity", "")) for k in graph.tasks)
    return any(isinstance(graph.nx.nodes[k].get("dask"), P2PBarrierTask) for k in graph.tasks)


# -- the compute driver --------------------------------------------------------------------


def compute_collections(engine: Engine, args: tuple[Any, ...], *, policy: str = "heft",
                        history: History | None = None, mode: str = "auto",
                        backup: bool = False, **kwargs: Any) -> tuple[Any, ...]:
    """``engine.compute``'s body: load, estimate, decide, run, record the decision."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}; use 'auto' to let openautoglm "
                         "choose per run, 'dask' to step aside.")
    t0 = time.perf_counter()
    dsk, keys, repack = collections_to_dsk(*args, **kwargs)
    graph = from_dask(dsk, keys)
    t_load = time.perf_counter() - t0
    workers = engine.workers()
    cluster = engine.cluster_model(workers)
    graph, summary = estimate_costs(graph, engine.client, history, copy=False)
    graph, plan, decision = plan_for_mode(engine, graph, cluster, policy, summary, mode,
                                           history)
    decision.planning_seconds += t_load
    result = engine._execute(graph, plan, workers, {}, history, keys, "compute", policy,
                             pin=decision.mode == "strict", priorities=decision.mode != "dask",
                             estimates=decision.mode != "dask",
                             backup=backup and not uses_p2p(graph))
    result.decision = decision
    decision.corrections.extend(getattr(result, "corrections", []))
    seen = observed_overhead(result.times, graph, [int(w["nthreads"]) for w in workers])
    if seen is not None:
        # The next plan uses what this run showed (no probe needed).
        engine._dispatch_overhead = seen
        decision.observed_overhead = seen
    engine.last_run = result
    if history is not None:
        record_decision(history, result.run_id, decision, cluster)
    return repack([result[k] for k in keys])


# -- decisions in the history --------------------------------------------------------------

_TABLE = """CREATE TABLE IF NOT EXISTS oag_decisions (
    run_id TEXT PRIMARY KEY, mode TEXT, requested TEXT, reason TEXT, uncertainty REAL,
    predicted_dask REAL, predicted_priorities REAL, predicted_strict REAL, overhead REAL,
    planning_seconds REAL, cached INTEGER, costs TEXT, corrections TEXT, cluster TEXT)"""


def record_decision(history: History, run_id: str, decision: Decision,
                    cluster: Cluster | None = None) -> None:
    """Store a run's mode decision beside the run in ``history`` (table ``oag_decisions``)."""
    p = decision.predicted
    overhead = decision.observed_overhead or decision.overhead
    row = (run_id, decision.mode, decision.requested, decision.reason, decision.uncertainty,
           p.get("dask"), p.get("priorities"), p.get("strict"), overhead,
           decision.planning_seconds, int(decision.cached), decision.costs,
           "\n".join(decision.corrections),
           None if cluster is None else ",".join(str(int(c)) for c in cluster.cores))
    with history._lock:
        history._conn.execute(_TABLE)
        history._conn.execute(
            f"INSERT OR REPLACE INTO oag_decisions VALUES ({', '.join('?' * len(row))})", row)


def decisions(history: History) -> list[dict[str, Any]]:
    """Every recorded mode decision, oldest first: run_id, mode, reason, predictions, ...

    Example:
        >>> from openautoglm.history.store import History
        >>> with History(":memory:") as h:
        ...     record_decision(h, "r1", Decision("dask", "forced", "dask"))
        ...     [(d["run_id"], d["mode"]) for d in decisions(h)]
        [('r1', 'dask')]
    """
    with history._lock:
        history._conn.execute(_TABLE)
        cur = history._conn.execute("SELECT * FROM oag_decisions ORDER BY rowid")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def as_dict(decision: Decision) -> dict[str, Any]:
    """The decision as a plain dict (for tables and JSON)."""
    return asdict(decision)

