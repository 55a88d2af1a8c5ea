"""GNNScheduler: learned priorities and shares, placement clusters, checked in the simulator.

::

    graph, cluster --features--> x, edge_index, edge_weight --GCN--> priority, share
                                                                        |
        candidates (each one list_makespan call on the same simulator): v
          learned      learned priority, shares, earliest-finish placement
          clusters     learned priority, heavy edges kept on one worker (pins)
          heft         upward rank, earliest-finish placement, one core per task
          heft(comm xA) HEFT's placement planned with A times slower transfers (COMM_SCALES)
          linear       upward rank, heaviest paths kept on one worker (linear clustering)
          heft+shares  upward rank with the learned shares (multi-core workers only)
          serial       upward rank, everything on the fastest worker, one core per task
          sampled      best of `samples` log-normal perturbations of the learned priority
          +iterated    each of them re-ranked by its realised upward rank (`iterate` rounds)
        --> the best TOP_K candidates, each improved by iterated local search
            (search.iterated_search): placement moves (critical chain next to its late data,
            critical-path tasks onto their parents' workers, chains and local groups across
            heavy cut edges, emptying a lightly used worker, offloading) alternating with
            re-ranking, two descents (restarting after each accepted move, and sweeping on),
            then kicks (realised rank times log-normal noise, re-ranked, refined when better),
            within 2 x REFINE_WORK // n list-scheduling calls each (one descent, REFINE_WORK // n,
            above WIDE_UP_TO tasks) --> the best plan
        --> +ranked: its workers kept, re-ranked longest remaining path first when that is
            no worse (robust when run times differ from the estimates)
        --> its Schedule (one list_schedule call)

Order alone cannot win when communication dominates (CCR 10): the data of a chain should not
cross the network. The cluster candidates merge the endpoints of the heaviest edges into
placement clusters (heaviest first, while a cluster's work stays under a balance cap), map the
clusters onto the fastest ``k`` workers by longest-processing-time, and pin their tasks there;
tasks left alone stay free. Because every candidate is simulated with the same cost model the
plan is judged by, ``policy="gnn"`` is never worse than the better of HEFT and serial execution
on the fastest worker.

``candidates="auto"`` (default) is the model-guided search (``schedulers.gnn.guided``): the
one-shot plan decoded from the GCN (learned priority, shares and co-location:
``schedulers.gnn.decode``), HEFT and serial, then an iterated local search within a count of
list-scheduling calls whose cut edges are tried in the order of the model's expected gain;
tiny graphs and plans at the lower bound skip most or all of it. ``"one"`` is the one-shot
plan alone (at most 4 calls). ``"all"`` is the full candidate set above (the former default:
about 20 candidates and 2 x REFINE_WORK / n calls of search on each of the best four; the
learned, heft and serial candidates only above ``full_up_to`` tasks).

``weights="untrained"`` runs the same policy with an untrained model (:func:`~openautoglm.schedulers.gnn.weights.untrained_model`):
its priority is HEFT's upward rank, its edge head says 1/2 on every edge (nothing merged, cut
edges tried heaviest first) and its shares are full: the control for every claim about learning.

Tests: ``tests/schedulers/gnn/test_gnn.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from openautoglm.core.costs import Ranks
from openautoglm.schedulers.base import Scheduler
from openautoglm.schedulers.gnn.decode import decode, predict_colocation
from openautoglm.schedulers.gnn.features import graph_features
from openautoglm.schedulers.gnn.guided import guided_budget, guided_search
from openautoglm.schedulers.gnn.local_search import (
    better,
    iterate_ranks,
    iterated_search,
    realised_rank,
)
from openautoglm.schedulers.gnn.placement import cluster_pins, linear_pins
from openautoglm.schedulers.gnn.weights import load_model
from openautoglm.simulate.list_scheduler import list_makespan, list_schedule

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.schedulers.gnn.model import SchedulerGCN
    from openautoglm.simulate.list_scheduler import ListResult
    from openautoglm.simulate.schedule import Schedule

__all__ = ["GNNScheduler", "GNNPlan"]


#: List-scheduling calls of one descent of a candidate's improvement: ``REFINE_WORK // n``
#: (bounded by ``refine`` and at least 16), so that phase costs about the same on every graph
#: size; graphs up to WIDE_UP_TO tasks get twice that (two descents, then kicks).
REFINE_WORK = 40_000
#: Local-search calls on graphs with gang tasks (simulated by the Python loop).
GANG_REFINE = 32

#: The improvement runs on the best TOP_K candidates of graphs up to WIDE_UP_TO tasks (each
#: candidate also re-ranked, linear clusters added); larger graphs improve the winner only.
TOP_K = 4
WIDE_UP_TO = 500

#: Fractions of the workers the linear-clustering candidates use (graphs up to WIDE_UP_TO).
LINEAR_FRACTIONS: tuple[float, ...] = (1.0, 0.5, 0.25)

#: Candidates placed by HEFT as if transfers took this many times longer (then simulated with
#: the real network): placements that keep more data local.
COMM_SCALES: tuple[float, ...] = (2.0, 4.0, 8.0)

#: Most alternations of placement moves and re-ranking in one descent.
IMPROVE_ROUNDS = 8

#: (min_ratio, balance, fraction of workers) of the placement-cluster candidates.
CLUSTER_CANDIDATES: tuple[tuple[float, float, float], ...] = (
    (0.0, 1.0, 1.0),
    (0.0, 1.5, 1.0),
    (1.0, 1.0, 1.0),
    (0.0, 1.0, 0.5),
    (0.0, 1.0, 0.25),
)


class GNNPlan(NamedTuple):
    """What the learned scheduler decided for one graph.

    Attributes:
        priority: Learned priority per task (indexed like ``graph.tasks``; higher runs first).
        share: Learned share of a worker's cores per task, in (0, 1].
        makespans: Simulated makespan of every candidate evaluated, by name.
        chosen: Name of the winning candidate.
        schedule: The winning schedule.
        colocation: Learned probability, per edge (graph edge order), that its endpoints
            belong on one worker (``None``: the model has no edge head).
        calls: List-scheduling calls spent choosing the plan (``candidates="auto"`` and
            ``"one"``; -1 where not counted).
    """

    priority: np.ndarray
    share: np.ndarray
    makespans: dict[str, float]
    chosen: str
    schedule: Schedule
    colocation: np.ndarray | None = None
    calls: int = -1


class GNNScheduler(Scheduler):
    """List scheduling by learned priority and share, with placement clusters.

    Args:
        weights: Path to trained weights; ``None`` uses the shipped ones; ``"untrained"``
            the control (:func:`~openautoglm.schedulers.gnn.weights.untrained_model`).
        model: A model to use instead of loading weights (training uses this).
        candidates: ``"auto"`` (the model-guided search), ``"all"`` (the full candidate set)
            or ``"one"`` (the one-shot plan; see the module docstring).
        budget: List-scheduling calls of the guided search (``"auto"``); ``None``:
            :func:`~openautoglm.schedulers.gnn.guided.guided_budget` (about 24,000 / n).
        full_up_to: Largest graph given the full candidate set under ``"auto"``.
        samples: Priority vectors sampled around the learned one (log-normal noise) and
            simulated, in the full candidate set (0: none).
        sigma: Scale of that noise.
        refine: Most list-scheduling calls of one descent of a candidate's improvement
            (:func:`~openautoglm.schedulers.gnn.local_search.iterated_search`: placement moves alternating with
            re-ranking, then kicks); graphs over ``REFINE_WORK / refine`` tasks get
            ``max(16, REFINE_WORK // n)``; graphs up to ``WIDE_UP_TO`` tasks twice that
            (0: none).
        seed: Seed of the sampling and of the kicks (the plan is deterministic for a seed).
        iterate: Rounds of iterative list scheduling applied to every candidate: re-rank by
            the candidate's realised upward rank (:func:`~openautoglm.schedulers.gnn.local_search.iterate_ranks`),
            kept when it improves (0: none).

    Raises:
        ValueError: If ``candidates`` is not one of the three names.

    Source: two-layer GCN (Kipf & Welling, ICLR 2017) priorities as in Jeon et al. (ICLR 2023),
    list scheduling with insertion as HEFT (Topcuoglu et al., IEEE TPDS 2002,
    doi:10.1109/71.993206), edge-zeroing clusters as Sarkar (1989).

    Example:
        >>> from openautoglm.core.loaders import random_dag
        >>> from openautoglm.core.cluster import Cluster
        >>> g, c = random_dag(40, ccr=10.0, seed=2), Cluster.homogeneous(4)
        >>> plan = GNNScheduler().plan(g, c)
        >>> bool(plan.schedule.makespan <= min(plan.makespans["heft"], plan.makespans["serial"]))
        True
    """

    name = "gnn"

    def __init__(
        self,
        weights: str | Path | None = None,
        model: SchedulerGCN | None = None,
        candidates: str = "auto",
        full_up_to: int = 2000,
        samples: int = 16,
        sigma: float = 0.3,
        refine: int = 512,
        seed: int | None = None,
        iterate: int = 2,
        budget: int | None = None,
    ) -> None:
        if candidates not in ("auto", "all", "one"):
            raise ValueError(f"candidates must be 'auto', 'all' or 'one', got {candidates!r}")
        self.weights = weights
        self._model = model
        self.candidates = candidates
        self.full_up_to = int(full_up_to)
        if samples < 0 or not sigma >= 0 or iterate < 0:
            raise ValueError(f"samples, sigma and iterate must be >= 0, got {samples}, {sigma} "
                             f"and {iterate}")
        self.samples = int(samples)
        self.refine = max(0, int(refine))
        self.sigma = float(sigma)
        self.seed = 0 if seed is None else seed
        self.iterate = int(iterate)
        if budget is not None and budget < 0:
            raise ValueError(f"budget must be >= 0 list-scheduling calls or None, got {budget}")
        self.budget = budget

    @property
    def model(self) -> SchedulerGCN:
        """The GCN (loaded on first use)."""
        if self._model is None:
            self._model = load_model(self.weights)
        return self._model

    def predict(self, graph: TaskGraph, cluster: Cluster) -> tuple[np.ndarray, np.ndarray, Ranks]:
        """Learned priority and share of every task.

        Returns:
            ``(priority, share, ranks)`` indexed like ``graph.tasks``.
        """
        priority, share, _prob, r = self.outputs(graph, cluster)
        return priority, share, r

    def outputs(self, graph: TaskGraph, cluster: Cluster
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Ranks]:
        """Learned priority and share per task, co-location probability per edge.

        Returns:
            ``(priority, share, colocation, ranks)``; ``colocation`` is ``None`` when the
            model has no edge head.
        """
        import torch

        f = graph_features(graph, cluster)
        model = self.model
        with torch.inference_mode():
            h = model.embed(f.x, f.adj)
            priority, share = model.heads(h, f.x)
            prob = predict_colocation(model, h, graph, cluster, f.ranks)
        return priority.double().numpy(), share.double().numpy(), prob, f.ranks

    def plan(self, graph: TaskGraph, cluster: Cluster) -> GNNPlan:
        """Predict, evaluate the candidates in the simulator, and keep the best.

        Args:
            graph: The task graph.
            cluster: The cluster.

        Returns:
            A :class:`GNNPlan` with every candidate's makespan and the winning schedule.
        """
        if len(graph) == 0:  # nothing to predict: the empty schedule
            empty = np.zeros(0)
            return GNNPlan(empty, empty, {"empty": 0.0}, "empty",
                           list_schedule(graph, cluster, empty))
        priority, share, prob, r = self.outputs(graph, cluster)
        if self.candidates in ("auto", "one"):
            return self._plan_guided(graph, cluster, priority, share, prob, r)
        mode = "all" if len(graph) <= self.full_up_to else "some"
        found = self._candidates(graph, cluster, priority, share, r, mode)
        # Small graphs get the wider search: every candidate re-ranked, the best few improved.
        wide = len(graph) <= WIDE_UP_TO
        if mode == "all" and self.iterate > 0 and wide:
            for name, cand in list(found.items()):
                r2, p2, pins2 = iterate_ranks(graph, cluster, cand.result, cand.priority,
                                              cand.shares, cand.pins, self.iterate)
                if r2.makespan < cand.result.makespan:
                    found[f"{name}+iterated"] = _Candidate(r2, p2, cand.shares, pins2)
        makespans = {k: v.result.makespan for k, v in found.items()}
        chosen = min(makespans, key=makespans.__getitem__)
        best = found[chosen]
        if mode == "all" and cluster.n_workers > 1:
            top = sorted(makespans, key=makespans.__getitem__)[:TOP_K if wide else 1]
            for name in top:
                nm, cand = self._improve(graph, cluster, name, found[name], makespans)
                if better(cand.result, best.result) or name == chosen:
                    chosen, best = nm, cand
        if mode == "all" and cluster.n_workers > 1:
            chosen, best = self._robust_order(graph, cluster, chosen, best, makespans)
        # Candidates are simulated as arrays; only the winner becomes a Schedule (same plan).
        schedule = list_schedule(graph, cluster, best.priority, shares=best.shares,
                                 workers=best.pins)
        return GNNPlan(priority, share, makespans, chosen, schedule, prob)

    def budget_for(self, graph: TaskGraph) -> int:
        """List-scheduling calls the guided search may spend on ``graph`` (``budget`` or
        :func:`~openautoglm.schedulers.gnn.guided.guided_budget`)."""
        return guided_budget(len(graph)) if self.budget is None else self.budget

    def _plan_guided(self, graph: TaskGraph, cluster: Cluster, priority: np.ndarray,
                     share: np.ndarray, prob: np.ndarray | None, r: Ranks) -> GNNPlan:
        """The one-shot plan (``"one"``) or the model-guided search from it (``"auto"``)."""
        if self.candidates == "one":
            d = decode(graph, cluster, r, priority, share, prob)
            schedule = list_schedule(graph, cluster, d.priority, shares=d.shares, workers=d.pins)
            return GNNPlan(priority, share, {d.name: d.result.makespan}, d.name, schedule, prob,
                           d.calls)
        g = guided_search(graph, cluster, r, priority, share, prob, self.budget_for(graph),
                          self.seed)
        chosen, best, calls = g.name, _Candidate(g.result, g.priority, g.shares, g.pins), g.calls
        if cluster.n_workers > 1 and "+search" in chosen:
            chosen, best = self._robust_order(graph, cluster, chosen, best, g.makespans)
            calls += 1
        schedule = list_schedule(graph, cluster, best.priority, shares=best.shares,
                                 workers=best.pins)
        return GNNPlan(priority, share, g.makespans, chosen, schedule, prob, calls)

    @staticmethod
    def _robust_order(graph: TaskGraph, cluster: Cluster, chosen: str, best: _Candidate,
                      makespans: dict[str, float]) -> tuple[str, _Candidate]:
        """The winner's workers, each one's tasks longest remaining path first, if no worse.

        Costs are estimates. The search may pack a worker short task first, which ties in the
        simulator (its tie-break prefers the smaller total finish time) but starts a long task
        late, so it ends alone when it runs longer than its hint; measured on AutoTrainer waves.
        Ranking by the plan's realised upward rank with every task kept on its worker puts
        long paths first; kept when its makespan is no worse (up to 1e-12 relative).
        """
        pins = np.asarray(best.result.worker, dtype=np.int64)
        prio = realised_rank(graph, cluster, best.result)
        res = list_makespan(graph, cluster, prio, shares=best.shares, workers=pins)
        if res.makespan > best.result.makespan * (1 + 1e-12):
            return chosen, best
        makespans[f"{chosen}+ranked"] = res.makespan
        return f"{chosen}+ranked", _Candidate(res, prio, best.shares, pins)

    def _improve(self, graph: TaskGraph, cluster: Cluster, chosen: str, best: _Candidate,
                 makespans: dict[str, float]) -> tuple[str, _Candidate]:
        """Iterated local search (placement moves, re-ranking, kicks) on one candidate."""
        # A fixed budget of list-scheduling work: fewer simulations on larger graphs. Small
        # graphs get both descents (each with that budget), larger ones the restarting one.
        budget = min(self.refine, max(16, REFINE_WORK // max(len(graph), 1)))
        if graph.gang.max(initial=1) > 1:  # gangs simulate in Python (~100x slower): fewer calls
            budget = min(budget, GANG_REFINE)
        if budget <= 0:
            return chosen, best
        wide = len(graph) <= WIDE_UP_TO
        res, prio, pins, _ = iterated_search(graph, cluster, best.result, best.priority,
                                             best.shares, best.pins, budget * (2 if wide else 1),
                                             seed=self.seed, rounds=IMPROVE_ROUNDS,
                                             sweep=None if wide else False)
        if not better(res, best.result):
            return chosen, best
        makespans[f"{chosen}+search"] = res.makespan
        return f"{chosen}+search", _Candidate(res, prio, best.shares, pins)

    def _candidates(self, graph: TaskGraph, cluster: Cluster, priority: np.ndarray,
                    share: np.ndarray, r: Ranks, mode: str) -> dict[str, _Candidate]:
        """Simulate every candidate plan (makespan only): name -> candidate."""
        found: dict[str, _Candidate] = {}

        def run(name: str, prio: np.ndarray, shares: np.ndarray | None,
                workers: np.ndarray | None = None) -> None:
            res = list_makespan(graph, cluster, prio, shares=shares, workers=workers)
            found[name] = _Candidate(res, prio, shares, workers)

        run("learned", priority, share)
        if mode == "one":
            return found
        run("heft", r.rank_u, None)
        if int(np.max(cluster.cores)) > 1:
            run("heft+shares", r.rank_u, share)
        fastest = int(np.argmin(np.asarray(graph.exec_time(cluster)).sum(axis=0)))
        run("serial", r.rank_u, None, np.full(len(graph), fastest, dtype=np.int64))
        if mode != "all":
            return found
        if cluster.n_workers > 1 and len(graph.edge_src) and np.isfinite(cluster.bandwidth):
            # Placements planned as if the network were slower, then simulated as it is.
            from openautoglm.core.cluster import Cluster as _C
            for alpha in COMM_SCALES:
                slow = _C(cluster.speeds, cluster.bandwidth / alpha, cluster.cores)
                pins = list_makespan(graph, slow, r.rank_u).worker
                run(f"heft(comm x{alpha:g})", r.rank_u, None, pins)
        if cluster.n_workers > 1 and len(graph.edge_src):
            seen: set[bytes] = set()
            heaviest_first = np.argsort(-r.comm, kind="stable")
            for min_ratio, balance, fraction in CLUSTER_CANDIDATES:
                pins = cluster_pins(graph, cluster, r, min_ratio, balance, fraction, heaviest_first)
                key = pins.tobytes()
                if key in seen or (pins < 0).all():
                    continue
                seen.add(key)
                run(f"clusters(r={min_ratio:g},b={balance:g},k={fraction:g})", priority, share, pins)
        if cluster.n_workers > 1 and len(graph.edge_src) and len(graph) <= WIDE_UP_TO:
            for fraction in LINEAR_FRACTIONS:
                pins = linear_pins(graph, cluster, r, fraction)
                run(f"linear(k={fraction:g})", r.rank_u, None, pins)
        if self.samples > 0:
            # Sampling around the learned priority (the policy's stochastic decoding), seeded.
            rng = np.random.default_rng(self.seed)
            lo, hi = float(priority.min()), float(priority.max())
            positive = priority - lo + 0.01 * (hi - lo) + 1e-12
            best: _Candidate | None = None
            for _ in range(self.samples):
                q = positive * np.exp(self.sigma * rng.standard_normal(len(graph)))
                res = list_makespan(graph, cluster, q, shares=share)
                if best is None or res.makespan < best.result.makespan:
                    best = _Candidate(res, q, share, None)
            if best is not None:
                found[f"sampled({self.samples})"] = best
        return found

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """The best candidate's schedule (see :meth:`plan`)."""
        return self.plan(graph, cluster).schedule


class _Candidate(NamedTuple):
    """A simulated candidate: its plan and the priority, shares and pins that produced it."""

    result: ListResult
    priority: np.ndarray
    shares: np.ndarray | None
    pins: np.ndarray | None

