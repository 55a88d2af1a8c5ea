"""Features: hand-computed ranks, per-graph normalisation, direction, relabelling invariance."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

import openautoglm as oag
from openautoglm.schedulers.gnn.features import FEATURE_NAMES, graph_features
from openautoglm.core.costs import ranks


def col(f, name):
    return f.x[:, FEATURE_NAMES.index(name)].numpy()


def diamond(scale: float = 1.0) -> oag.TaskGraph:
    """a -> {b, c} -> d; the path through b is heavier::

          a
         / \\
        b   c
         \\ /
          d
    """
    G = nx.DiGraph()
    G.add_nodes_from([("a", {"cost": 2 * scale}), ("b", {"cost": 4 * scale}),
                      ("c", {"cost": 1 * scale}), ("d", {"cost": 3 * scale})])
    G.add_edges_from([("a", "b", {"size": 1 * scale}), ("a", "c", {"size": 1 * scale}),
                      ("b", "d", {"size": 2 * scale}), ("c", "d", {"size": 0.5 * scale})])
    return oag.TaskGraph.from_networkx(G)


def test_ranks_by_hand():
    g, c = diamond(), oag.Cluster.homogeneous(2)
    r = ranks(g, c)
    i = g.index
    # rank_u(d)=3, rank_u(b)=4+2+3=9, rank_u(c)=1+0.5+3=4.5, rank_u(a)=2+max(1+9, 1+4.5)=12
    assert r.rank_u[[i["a"], i["b"], i["c"], i["d"]]].tolist() == [12.0, 9.0, 4.5, 3.0]
    # rank_d(b)=2+1=3, rank_d(d)=max(3+4+2, 3+1+0.5)=9
    assert r.rank_d[i["d"]] == 9.0 and r.rank_d[i["b"]] == 3.0
    assert r.cp == 12.0
    assert r.rank_u0[i["a"]] == 9.0  # 2 + 4 + 3 without transfers
    assert r.level.tolist() == [0.0, 1.0, 1.0, 2.0]


def test_shapes_and_critical_path():
    g, c = diamond(), oag.Cluster.homogeneous(2)
    f = graph_features(g, c)
    assert f.x.shape == (4, len(FEATURE_NAMES))
    assert f.edge_index.shape == (2, 8) and f.edge_weight.shape == (8,)
    assert (f.edge_weight >= 1).all()
    on_cp = dict(zip(g.tasks, col(f, "on_cp")))
    assert on_cp == {"a": 1.0, "b": 1.0, "c": 0.0, "d": 1.0}
    assert np.isfinite(f.x.numpy()).all()


def test_normalised_per_graph():
    """Scaling every cost and size by 1000 leaves the features unchanged."""
    c = oag.Cluster.homogeneous(3)
    a, b = graph_features(diamond(1.0), c), graph_features(diamond(1000.0), c)
    np.testing.assert_allclose(a.x.numpy(), b.x.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.edge_weight.numpy(), b.edge_weight.numpy(), rtol=1e-5)


def test_direction_matters():
    """Reversing every edge swaps upward and downward information."""
    g = diamond()
    R = g.nx.reverse(copy=True)
    gr = oag.TaskGraph.from_networkx(R)
    c = oag.Cluster.homogeneous(2)
    f, fr = graph_features(g, c), graph_features(gr, c)
    fx = dict(zip(g.tasks, f.x.numpy()))
    frx = dict(zip(gr.tasks, fr.x.numpy()))
    for k in g.tasks:
        assert not np.allclose(fx[k], frx[k]) or k in ("b", "c")
    assert col(f, "in_degree")[g.index["d"]] == pytest.approx(np.log1p(2))
    assert col(fr, "out_degree")[gr.index["d"]] == pytest.approx(np.log1p(2))


def test_relabel_and_reorder_invariant():
    """Features belong to tasks, not to names or insertion order."""
    g = oag.random_dag(40, ccr=2.0, seed=5)
    G2 = nx.DiGraph()
    G2.add_nodes_from(reversed(list(g.nx.nodes(data=True))))
    G2.add_edges_from(g.nx.edges(data=True))
    h = oag.TaskGraph.from_networkx(nx.relabel_nodes(G2, lambda k: f"t{k}"))
    c = oag.Cluster(speeds=[1, 2, 2])
    fg, fh = graph_features(g, c), graph_features(h, c)
    for k in g.tasks:
        np.testing.assert_allclose(fg.x[g.index[k]].numpy(), fh.x[h.index[f"t{k}"]].numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_history_refined_costs_flow_in():
    """Features read the graph's cost arrays: a refined cost changes them."""
    g = diamond()
    G = g.nx.copy()
    G.nodes["c"]["cost"] = 50.0
    c = oag.Cluster.homogeneous(2)
    f1, f2 = graph_features(g, c), graph_features(oag.TaskGraph.from_networkx(G), c)
    assert col(f1, "on_cp")[g.index["c"]] == 0.0
    assert col(f2, "on_cp")[g.index["c"]] == 1.0


def test_heterogeneous_costs_and_single_worker():
    G = nx.DiGraph([("a", "b")])
    G.nodes["a"]["costs"] = [1.0, 3.0]
    G.nodes["b"]["costs"] = [2.0, 2.0]
    G.edges["a", "b"]["size"] = 5.0
    g = oag.TaskGraph.from_networkx(G)
    f = graph_features(g, oag.Cluster.homogeneous(2))
    assert col(f, "cost_spread")[g.index["a"]] == pytest.approx(0.5)
    assert col(f, "cost_min")[g.index["a"]] == pytest.approx(0.5)
    # One worker: nothing moves, so the ranks carry no transfer time.
    G1 = nx.DiGraph([("a", "b")]); nx.set_node_attributes(G1, 1.0, "cost")
    G1.edges["a", "b"]["size"] = 9.0
    assert ranks(oag.TaskGraph.from_networkx(G1), oag.Cluster.homogeneous(1)).cp == 2.0


def test_single_task_and_no_edges():
    G = nx.DiGraph(); G.add_node("x", cost=0.0)
    f = graph_features(oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2))
    assert f.x.shape == (1, len(FEATURE_NAMES)) and f.edge_index.shape == (2, 0)
    assert np.isfinite(f.x.numpy()).all()


@pytest.mark.parametrize("density,jump", [(0.1, 1), (0.6, 1), (0.9, 3)])
def test_compiled_and_python_rank_sweeps_agree(monkeypatch, density, jump):
    """The compiled sweeps and their Python loop give the very same ranks, dense graphs too."""
    from openautoglm import _numba

    g, c = oag.random_dag(400, density=density, jump=jump, ccr=3.0, seed=11), oag.Cluster([1, 2, 3])
    a = ranks(g, c)  # compiled when numba is installed (400 tasks >= _numba.SMALL)
    monkeypatch.setattr(_numba, "HAVE_NUMBA", False)
    b = ranks(g, c)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
