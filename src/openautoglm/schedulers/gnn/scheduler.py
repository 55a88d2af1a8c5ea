"""GNNScheduler: learned priorities and shares, placement clusters, checked in the simulator.

::

    graph, cluster --features--> x, edge_index, edge_weight --GCN--> priority, share
                                                                        |
        candidates (each one list_makespan call on the same simulator): v
          learned, clusters, heft, heft(comm xA), linear, heft+shares, serial, sampled,
          each +iterated (re-ranked by its realised upward rank): see candidates.py
        --> the best TOP_K candidates, each improved by iterated local search
            (local_search.iterated_search): placement moves (critical chain next to its late data,
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
plan alone (at most 4 calls). ``"all"`` is the full candidate set above (``candidates.py``;
the former default: about 20 candidates and 2 x REFINE_WORK / n calls of search on each of the
best four; the learned, heft and serial candidates only above ``full_up_to`` tasks).

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
from openautoglm.schedulers.gnn.candidates import Candidate, full_search, robust_order
from openautoglm.schedulers.gnn.decode import decode, predict_colocation
from openautoglm.schedulers.gnn.features import graph_features
from openautoglm.schedulers.gnn.guided import guided_budget, guided_search
from openautoglm.schedulers.gnn.weights import load_model
from openautoglm.simulate.list_scheduler import list_schedule

if TYPE_CHECKING:
    from openautoglm.core.cluster import Cluster
    from openautoglm.core.graph import TaskGraph
    from openautoglm.schedulers.gnn.model import SchedulerGCN
    from openautoglm.simulate.schedule import Schedule

__all__ = ["GNNScheduler", "GNNPlan"]


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
        makespans, chosen, best = full_search(
            graph, cluster, priority, share, r, full=len(graph) <= self.full_up_to,
            samples=self.samples, sigma=self.sigma, refine=self.refine, seed=self.seed,
            iterate=self.iterate)
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
        chosen, best, calls = g.name, Candidate(g.result, g.priority, g.shares, g.pins), g.calls
        if cluster.n_workers > 1 and "+search" in chosen:
            chosen, best = robust_order(graph, cluster, chosen, best, g.makespans)
            calls += 1
        schedule = list_schedule(graph, cluster, best.priority, shares=best.shares,
                                 workers=best.pins)
        return GNNPlan(priority, share, g.makespans, chosen, schedule, prob, calls)

    def schedule(self, graph: TaskGraph, cluster: Cluster) -> Schedule:
        """The best candidate's schedule (see :meth:`plan`)."""
        return self.plan(graph, cluster).schedule
