"""TaskGraph construction, validation, arrays, loaders (WfFormat 1.4/1.5, random DAGs)."""
from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest

import openautoglm as oag
from workflow_traces import smallest_traces


def diamond() -> nx.DiGraph:
    G = nx.DiGraph()
    for k, c in zip("abcd", (1.0, 2.0, 3.0, 4.0)):
        G.add_node(k, cost=c)
    G.add_edge("a", "b", size=1.0)
    G.add_edge("a", "c", size=2.0)
    G.add_edge("b", "d", size=3.0)
    G.add_edge("c", "d")
    return G


def test_arrays_and_csr():
    g = oag.TaskGraph.from_networkx(diamond())
    assert g.tasks == ["a", "b", "c", "d"] and len(g) == 4
    assert g.index == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert g.cost.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert g.parallel.tolist() == [0.0] * 4
    edges = {(int(u), int(v)): s for u, v, s in zip(g.edge_src, g.edge_dst, g.edge_size)}
    assert edges == {(0, 1): 1.0, (0, 2): 2.0, (1, 3): 3.0, (2, 3): 0.0}
    preds_of_d = g.pred_idx[g.pred_ptr[3]:g.pred_ptr[4]].tolist()
    assert sorted(preds_of_d) == [1, 2]
    succ_a = dict(zip(g.succ_idx[g.succ_ptr[0]:g.succ_ptr[1]].tolist(),
                      g.succ_size[g.succ_ptr[0]:g.succ_ptr[1]].tolist()))
    assert succ_a == {1: 1.0, 2: 2.0}
    assert g.dependencies("d") == ["b", "c"] and g.dependents("a") == ["b", "c"]
    with pytest.raises(ValueError):
        g.cost[0] = 5.0  # read-only views


def test_topological_order_follows_insertion_not_names():
    G = nx.DiGraph()
    G.add_node("z", cost=1)
    G.add_node("a", cost=1)
    G.add_edge("z", "m")
    G.nodes["m"]["cost"] = 1
    g = oag.TaskGraph.from_networkx(G)
    assert g.tasks == ["z", "a", "m"]
    for u, v in zip(g.edge_src, g.edge_dst):
        assert u < v


def test_cycle_error_lists_the_cycle():
    G = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a"), ("x", "a")])
    nx.set_node_attributes(G, 1.0, "cost")
    with pytest.raises(oag.CycleError) as info:
        oag.TaskGraph.from_networkx(G)
    msg = str(info.value)
    assert "a -> b -> c -> a" in msg or "b -> c -> a -> b" in msg or "c -> a -> b -> c" in msg
    assert "x" not in msg.split(":")[-1]


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, "slow"])
def test_bad_cost_refused(bad):
    G = diamond()
    G.nodes["c"]["cost"] = bad
    with pytest.raises(ValueError, match="'c'"):
        oag.TaskGraph.from_networkx(G)


def test_negative_size_and_missing_cost_refused():
    G = diamond()
    G.edges["a", "b"]["size"] = -2
    with pytest.raises(ValueError, match="'a' -> 'b'"):
        oag.TaskGraph.from_networkx(G)
    G = diamond()
    del G.nodes["b"]["cost"]
    with pytest.raises(ValueError, match="task 'b' has no 'cost'"):
        oag.TaskGraph.from_networkx(G)
    G = diamond()
    G.nodes["b"]["parallel"] = 1.5
    with pytest.raises(ValueError, match="parallel"):
        oag.TaskGraph.from_networkx(G)


def test_costs_per_worker_and_exec_time():
    G = diamond()
    G.nodes["b"]["costs"] = [5.0, 1.0]
    g = oag.TaskGraph.from_networkx(G)
    assert g.cost[1] == 3.0  # mean of the per-worker costs
    et = g.exec_time(oag.Cluster(speeds=[1.0, 2.0]))
    assert et.tolist() == [[1.0, 0.5], [5.0, 1.0], [3.0, 1.5], [4.0, 2.0]]
    with pytest.raises(ValueError, match="the cluster has 3"):
        g.exec_time(oag.Cluster.homogeneous(3))
    G.nodes["c"]["costs"] = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="one run time per worker"):
        oag.TaskGraph.from_networkx(G)


def test_other_attributes_kept():
    G = diamond()
    G.nodes["a"]["task"] = object()
    g = oag.TaskGraph.from_networkx(G)
    assert g.nx.nodes["a"]["task"] is G.nodes["a"]["task"]


def test_with_ccr():
    g = oag.TaskGraph.from_networkx(diamond())
    for target in (0.0, 0.5, 10.0):
        h = g.with_ccr(target)
        assert h.ccr == pytest.approx(target)
        assert h.edge_size.mean() / h.cost.mean() == pytest.approx(target)
        assert h.nx.edges["a", "b"]["size"] == pytest.approx(h.edge_size[0])
    assert g.ccr == pytest.approx(1.5 / 2.5)  # the original is untouched
    with pytest.raises(ValueError, match="ccr"):
        g.with_ccr(-1)
    lonely = nx.DiGraph()
    lonely.add_node(0, cost=1.0)
    with pytest.raises(ValueError, match="no edge data"):
        oag.TaskGraph.from_networkx(lonely).with_ccr(1.0)


def test_random_dag_deterministic_and_knobs():
    a = oag.random_dag(200, fat=0.6, density=0.3, regularity=0.5, jump=2, ccr=2.0, seed=7)
    b = oag.random_dag(200, fat=0.6, density=0.3, regularity=0.5, jump=2, ccr=2.0, seed=7)
    c = oag.random_dag(200, fat=0.6, density=0.3, regularity=0.5, jump=2, ccr=2.0, seed=8)
    assert len(a) == 200
    assert np.array_equal(a.cost, b.cost) and np.array_equal(a.edge_src, b.edge_src)
    assert not np.array_equal(a.cost, c.cost)
    assert a.ccr == pytest.approx(2.0)
    chain = oag.random_dag(30, fat=0.0, seed=1)
    assert chain.nx.number_of_edges() == 29 and nx.is_directed_acyclic_graph(chain.nx)
    wide = oag.random_dag(30, fat=1.0, seed=1)
    assert wide.nx.number_of_edges() == 0
    dense = oag.random_dag(100, fat=0.5, density=0.9, seed=1)
    sparse = oag.random_dag(100, fat=0.5, density=0.0, seed=1)
    assert dense.nx.number_of_edges() > 2 * sparse.nx.number_of_edges()
    logn = oag.random_dag(100, cost_dist="lognormal", cost_range=(1, 50), seed=1)
    assert logn.cost.min() >= 1 and logn.cost.max() <= 50
    for kw in ({"n": 0}, {"n": 5, "fat": 2}, {"n": 5, "jump": 0}, {"n": 5, "cost_dist": "beta"}):
        with pytest.raises(ValueError):
            oag.random_dag(**kw)


def _wf15_doc() -> dict:
    return {"name": "t", "schemaVersion": "1.5", "workflow": {
        "specification": {
            "tasks": [
                {"name": "a", "id": "a_ID1", "parents": [], "children": ["b_ID2", "c_ID3"],
                 "inputFiles": ["in"], "outputFiles": ["f1", "f2"]},
                {"name": "b", "id": "b_ID2", "parents": ["a_ID1"], "children": ["c_ID3"],
                 "inputFiles": ["f1"], "outputFiles": ["f3"]},
                {"name": "c", "id": "c_ID3", "parents": ["a_ID1", "b_ID2"], "children": [],
                 "inputFiles": ["f1", "f2", "f3"], "outputFiles": []}],
            "files": [{"id": "in", "sizeInBytes": 7}, {"id": "f1", "sizeInBytes": 100},
                      {"id": "f2", "sizeInBytes": 50}, {"id": "f3", "sizeInBytes": 30}]},
        "execution": {"tasks": [{"id": "a_ID1", "runtimeInSeconds": 2.0},
                                {"id": "b_ID2", "runtimeInSeconds": 3.0},
                                {"id": "c_ID3", "runtimeInSeconds": 4.0}]}}}


def _wf14_doc() -> dict:
    def f(name, link, size):
        return {"link": link, "name": name, "sizeInBytes": size}
    return {"name": "t", "schemaVersion": "1.4", "workflow": {"tasks": [
        {"name": "a", "id": "a_ID1", "parents": [], "runtimeInSeconds": 2.0,
         "files": [f("in", "input", 7), f("f1", "output", 100), f("f2", "output", 50)]},
        {"name": "b", "id": "b_ID2", "parents": ["a"], "runtimeInSeconds": 3.0,
         "files": [f("f1", "input", 100), f("f3", "output", 30)]},
        {"name": "c", "id": "c_ID3", "parents": ["a", "b"], "runtimeInSeconds": 4.0,
         "files": [f("f1", "input", 100), f("f2", "input", 50), f("f3", "input", 30)]}]}}


@pytest.mark.parametrize("make", [_wf15_doc, _wf14_doc])
def test_load_wfcommons_both_versions(tmp_path, make):
    p = tmp_path / "w.json"
    p.write_text(json.dumps(make()))
    g = oag.load_wfcommons(p, bandwidth=10.0)
    # 1.5 refers to tasks by id, 1.4 by name (the schemas' own references).
    a, b, c = ["a_ID1", "b_ID2", "c_ID3"] if make is _wf15_doc else ["a", "b", "c"]
    assert g.tasks == [a, b, c]
    assert g.cost.tolist() == [2.0, 3.0, 4.0]
    sizes = {(g.tasks[u], g.tasks[v]): s for u, v, s in zip(g.edge_src, g.edge_dst, g.edge_size)}
    assert sizes == {(a, b): 10.0, (a, c): 15.0, (b, c): 3.0}


def test_load_wfcommons_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no WfFormat trace"):
        oag.load_wfcommons(tmp_path / "missing.json")
    doc = _wf15_doc()
    doc["schemaVersion"] = "2.0"
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="schemaVersion '2.0' is not supported"):
        oag.load_wfcommons(tmp_path / "v.json")
    doc = _wf15_doc()
    doc["workflow"]["execution"]["tasks"].pop()
    (tmp_path / "r.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="'c_ID3' has no runtimeInSeconds"):
        oag.load_wfcommons(tmp_path / "r.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        oag.load_wfcommons(tmp_path / "x.json")
    (tmp_path / "ok.json").write_text(json.dumps(_wf15_doc()))
    with pytest.raises(ValueError, match="bandwidth"):
        oag.load_wfcommons(tmp_path / "ok.json", bandwidth=0)


def test_real_traces_load(workflows_dir):
    for path in smallest_traces(workflows_dir):
        g = oag.load_wfcommons(path, bandwidth=1e6)
        doc = json.loads(path.read_text())
        assert len(g) == len(doc["workflow"]["specification"]["tasks"]), path.name
        assert (g.cost >= 0).all() and g.edge_size.sum() > 0, path.name
        assert nx.is_directed_acyclic_graph(g.nx)
        assert g.with_ccr(1.0).ccr == pytest.approx(1.0)
