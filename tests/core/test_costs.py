"""The one cost model (core/costs.py): every stage that uses a duration, a transfer time or a
rank agrees with it numerically, so a second copy of the formula cannot drift unseen."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import openautoglm as oag
from openautoglm.core.costs import (
    amdahl,
    downward_rank,
    edge_transfer_times,
    mean_costs,
    ranks,
    task_durations,
    transfer_time,
    upward_rank,
)
from openautoglm.simulate.list_scheduler import list_makespan, list_schedule
from openautoglm.simulate.schedule import check_schedule

CLUSTERS = {
    "one worker": oag.Cluster.homogeneous(1, bandwidth=2.0),
    "homogeneous": oag.Cluster.homogeneous(3, bandwidth=0.5),
    "heterogeneous, multi-core": oag.Cluster(speeds=[1.0, 2.0, 0.5], bandwidth=4.0, cores=[1, 4, 2]),
}


def _graph(seed: int) -> oag.TaskGraph:
    g = oag.random_dag(40, ccr=1.0, seed=seed)
    G = g.nx.copy()
    rng = np.random.default_rng(seed)
    for k in G.nodes:
        G.nodes[k]["parallel"] = float(rng.choice([0.0, 0.5, 0.9, 1.0]))
    return oag.TaskGraph.from_networkx(G)


def _reference_ranks(graph: oag.TaskGraph, cluster: oag.Cluster):
    """Topcuoglu et al. 2002 from the definitions, over networkx, no arrays shared."""
    G = graph.nx
    et = graph.exec_time(cluster)
    w = {k: float(et[graph.index[k]].mean()) for k in G}
    bw = cluster.bandwidth if cluster.n_workers > 1 else np.inf
    c = {(u, v): float(a.get("size", 0.0)) / bw for u, v, a in G.edges(data=True)}
    up: dict = {}
    for k in reversed(list(nx.topological_sort(G))):
        up[k] = w[k] + max((c[k, j] + up[j] for j in G.successors(k)), default=0.0)
    down: dict = {}
    for k in nx.topological_sort(G):
        down[k] = max((down[j] + w[j] + c[j, k] for j in G.predecessors(k)), default=0.0)
    return [up[k] for k in graph.tasks], [down[k] for k in graph.tasks]


@pytest.mark.parametrize("name", sorted(CLUSTERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_agree_with_the_definitions_and_each_other(name, seed):
    g, c = _graph(seed), CLUSTERS[name]
    up, down = _reference_ranks(g, c)
    r = ranks(g, c)
    wbar, cbar = mean_costs(g, c)
    np.testing.assert_allclose(r.rank_u, up, rtol=1e-12)
    np.testing.assert_allclose(r.rank_d, down, rtol=1e-12)
    np.testing.assert_array_equal(r.rank_u, upward_rank(g, wbar, cbar))
    np.testing.assert_array_equal(r.rank_d, downward_rank(g, wbar, cbar))
    np.testing.assert_array_equal(r.rank_u0, upward_rank(g, wbar))
    assert r.cp == pytest.approx(max(u + d for u, d in zip(up, down)), rel=1e-12)
    # The edge-order transfer times are the pred-order ones, permuted.
    by_edge = dict(zip(zip(g.edge_src.tolist(), g.edge_dst.tolist()), r.comm.tolist()))
    dst = np.repeat(np.arange(len(g)), np.diff(g.pred_ptr))
    assert [by_edge[s, d] for s, d in zip(g.pred_idx.tolist(), dst.tolist())] == cbar.tolist()
    np.testing.assert_array_equal(r.comm, edge_transfer_times(g, c))


@pytest.mark.parametrize("name", sorted(CLUSTERS))
def test_the_simulator_and_the_checker_use_the_cost_models_durations(name):
    """Every placed task runs task_durations(graph, cluster, cores) on its worker."""
    g, c = _graph(3), CLUSTERS[name]
    cores = np.minimum(np.arange(len(g)) % 3 + 1, c.cores.min())
    s = list_schedule(g, c, upward_rank(g, mean_costs(g, c)[0]), cores=cores)
    assert check_schedule(s) == []
    dur = task_durations(g, c, np.broadcast_to(cores[:, None], (len(g), c.n_workers)))
    for k, (w, start, finish) in s.placements.items():
        i = g.index[k]
        assert finish - start == pytest.approx(dur[i, w], rel=1e-12)
        assert s.duration(k, w, int(cores[i])) == pytest.approx(dur[i, w], rel=1e-12)
    arrays = list_makespan(g, c, upward_rank(g, mean_costs(g, c)[0]), cores=cores)
    np.testing.assert_allclose(arrays.finish - arrays.start,
                               dur[np.arange(len(g)), arrays.worker], rtol=1e-12)


def test_the_checker_refuses_a_duration_off_the_cost_model():
    g, c = _graph(4), CLUSTERS["heterogeneous, multi-core"]
    s = list_schedule(g, c, upward_rank(g, mean_costs(g, c)[0]))
    k = g.tasks[-1]
    w, start, finish = s.placements[k]
    s.placements[k] = type(s.placements[k])(w, start, start + 1.01 * (finish - start))
    assert any("cost model says" in p for p in check_schedule(s))


def test_amdahl_and_its_inverse():
    """History turns a measured duration back into a one-core cost by dividing by amdahl."""
    p = np.array([0.0, 0.25, 0.5, 1.0])
    for k in (1, 2, 4, 7):
        factor = amdahl(p, k)
        np.testing.assert_allclose(factor, (1 - p) + p / k)
        np.testing.assert_allclose(3.0 * factor / factor, 3.0)
    assert amdahl(0.3, 1) == pytest.approx(1.0)


def test_transfer_time_is_size_over_bandwidth_and_free_on_one_worker():
    g = _graph(5)
    two = oag.Cluster.homogeneous(2, bandwidth=8.0)
    np.testing.assert_array_equal(transfer_time(g.pred_size, two), g.pred_size / 8.0)
    assert not edge_transfer_times(g, oag.Cluster.homogeneous(1, bandwidth=8.0)).any()
    assert not mean_costs(g, oag.Cluster.homogeneous(1, bandwidth=8.0))[1].any()
