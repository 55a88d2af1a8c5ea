"""The searches the learned scheduler runs: the list evaluator and the iterated local search."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import openautoglm as oag
from openautoglm.core.costs import ranks
from openautoglm.schedulers.gnn.local_search import iterated_search, refine_placement
from openautoglm.simulate.list_scheduler import ListEvaluator, list_makespan
from openautoglm.testing import assert_valid_schedule


@pytest.mark.parametrize("seed", range(4))
def test_list_evaluator_matches_list_makespan(seed):
    """Same plan as list_makespan for free, partly pinned and fully pinned tasks, with shares."""
    rng = np.random.default_rng(seed)
    g = oag.random_dag(50 + 10 * seed, ccr=[0.1, 1.0, 10.0, 1.0][seed], seed=seed)
    c = oag.Cluster.homogeneous(4, cores=[1, 1, 4, 2][seed])
    shares = rng.uniform(0.1, 1.0, len(g)) if seed >= 2 else None
    ev = ListEvaluator(g, c, shares)
    prio = ranks(g, c).rank_u
    free = list_makespan(g, c, prio, shares=shares)
    partly = np.where(rng.random(len(g)) < 0.5, rng.integers(0, 4, len(g)), -1)
    for pins in (None, partly, np.asarray(free.worker, dtype=np.int64)):
        a, b = ev(prio, pins), list_makespan(g, c, prio, shares=shares, workers=pins)
        assert a.makespan == b.makespan
        assert (a.worker == b.worker).all() and (a.start == b.start).all()
    assert ev.calls == 3


@pytest.mark.parametrize("seed", range(6))
def test_iterated_search_never_loses_and_is_seeded(seed):
    """The plan is no longer than its input, within budget, rebuildable, the same when rerun."""
    g = oag.random_dag(40 + 15 * seed, ccr=[1.0, 10.0][seed % 2], seed=100 + seed)
    c = oag.Cluster.homogeneous([4, 16][seed // 3])
    rank_u = ranks(g, c).rank_u
    start = list_makespan(g, c, rank_u)
    best, prio, pins, spent = iterated_search(g, c, start, rank_u, None, None, budget=150, seed=3)
    assert best.makespan <= start.makespan and spent <= 150
    s = oag.list_schedule(g, c, prio, workers=pins)
    assert_valid_schedule(s)
    assert s.makespan == best.makespan
    again = iterated_search(g, c, start, rank_u, None, None, budget=150, seed=3)
    assert again[0].makespan == best.makespan


def test_refine_placement_undoes_crosswise_chains():
    """Two chains a -> b and c -> d with heavy data, placed crosswise by hand::

        worker 0: a  ~~~~~~~~~~  d        b waits 10 for a's data, d waits 10 for c's
        worker 1: c  ~~~~~~~~~~  b        (makespan 12)

    A few moves bring each child to its parent's data (makespan 4 or better).
    """
    G = nx.DiGraph()
    G.add_nodes_from([(k, {"cost": 1.0}) for k in "abcd"])
    G.add_edges_from([("a", "b", {"size": 10.0}), ("c", "d", {"size": 10.0})])
    g, c = oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2)
    prio = ranks(g, c).rank_u
    pins = np.array([{"a": 0, "b": 1, "c": 1, "d": 0}[k] for k in g.tasks], dtype=np.int64)
    plan = list_makespan(g, c, prio, workers=pins)
    assert plan.makespan == 12.0
    best, pins, spent = refine_placement(g, c, plan, prio, None, budget=8)
    assert best.makespan <= 4.0 and spent <= 8
    assert oag.list_schedule(g, c, prio, workers=pins).makespan == best.makespan
