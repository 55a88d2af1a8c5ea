"""The learned placement: untrained control, one-shot decoder, guided search, targets, training."""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import openautoglm as oag
from openautoglm.core.costs import ranks
from openautoglm.schedulers.gnn.decode import (EDGE_FEATURE_NAMES, colocation_pins, decode,
                                               edge_features)
from openautoglm.schedulers.gnn.features import FEATURE_NAMES
from openautoglm.schedulers.gnn.guided import TINY_BUDGET, guided_budget
from openautoglm.schedulers.gnn.model import SchedulerGCN
from openautoglm.schedulers.gnn.scheduler import GNNScheduler
from openautoglm.schedulers.gnn.targets import cached_target, search_target
from openautoglm.schedulers.gnn.weights import load_model, save_model, untrained_model
from openautoglm.testing import assert_valid_schedule

torch.set_num_threads(1)
SRC = Path(__file__).resolve().parents[3] / "src"


def heft(g, c) -> float:
    return oag.schedule(g, c, policy="heft").makespan


def serial(g, c) -> float:
    fastest = int(np.argmin(g.exec_time(c).sum(axis=0)))
    return oag.list_schedule(g, c, ranks(g, c).rank_u, workers=np.full(len(g), fastest)).makespan


def random_model(seed: int) -> SchedulerGCN:
    """A model with every head away from its zero start (a stand-in for trained weights)."""
    torch.manual_seed(seed)
    m = SchedulerGCN(len(FEATURE_NAMES), 8, FEATURE_NAMES.index("rank_u"),
                     edge_channels=len(EDGE_FEATURE_NAMES))
    for layer in (m.priority_head[-1], m.edge_out):
        torch.nn.init.normal_(layer.weight, std=2.0)
        torch.nn.init.normal_(layer.bias, std=1.0)
    return m.eval()


def test_untrained_control_is_heft_with_full_shares_and_no_colocation():
    g, c = oag.random_dag(80, ccr=10.0, seed=2), oag.Cluster.homogeneous(4)
    s = GNNScheduler(weights="untrained", candidates="one")
    priority, share, prob, r = s.outputs(g, c)
    assert (np.argsort(-priority, kind="stable") == np.argsort(-r.rank_u, kind="stable")).all()
    assert (share == 1.0).all() and (prob == 0.5).all()
    plan = s.plan(g, c)
    assert plan.chosen == "learned" and plan.calls == 1
    assert plan.schedule.makespan == heft(g, c)
    # the control does not touch the global torch random state
    torch.manual_seed(7)
    a = torch.rand(3)
    torch.manual_seed(7)
    untrained_model(seed=3)
    assert torch.equal(torch.rand(3), a)


def test_colocation_pins_keep_likely_edges_on_one_worker():
    """Two chains a0->a1->a2, b0->b1->b2; the edge head says a-edges and b-edges co-locate."""
    G = nx.DiGraph()
    for ch in "ab":
        G.add_nodes_from([(f"{ch}{i}", {"cost": 1.0}) for i in range(3)])
        G.add_edges_from([(f"{ch}{i}", f"{ch}{i + 1}", {"size": 5.0}) for i in range(2)])
    g, c = oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2)
    r = ranks(g, c)
    pins = colocation_pins(g, c, r, np.full(len(g.edge_src), 0.9))
    w = {k: int(pins[g.index[k]]) for k in g.tasks}
    assert w["a0"] == w["a1"] == w["a2"] != w["b0"] == w["b1"] == w["b2"]
    assert colocation_pins(g, c, r, np.full(len(g.edge_src), 0.5)) is None
    d = decode(g, c, r, r.rank_u, None, np.full(len(g.edge_src), 0.9))
    assert d.result.makespan == 3.0 and d.calls <= 4
    assert edge_features(g, c, r).shape == (4, len(EDGE_FEATURE_NAMES))


@st.composite
def graph_and_cluster(draw):
    n = draw(st.integers(1, 45))
    g = oag.random_dag(n, fat=draw(st.floats(0.1, 0.9)), density=draw(st.floats(0.0, 1.0)),
                       jump=draw(st.integers(1, 3)), ccr=draw(st.sampled_from([0.0, 0.1, 1.0, 10.0])),
                       seed=draw(st.integers(0, 10_000)))
    if draw(st.booleans()):
        G = g.nx.copy()
        for k in G:
            G.nodes[k]["parallel"] = draw(st.sampled_from([0.0, 0.5, 0.95]))
        g = oag.TaskGraph.from_networkx(G)
    w = draw(st.integers(1, 5))
    speeds = draw(st.lists(st.sampled_from([1.0, 2.0, 3.5]), min_size=w, max_size=w))
    cores = draw(st.lists(st.integers(1, 4), min_size=w, max_size=w))
    bandwidth = draw(st.sampled_from([0.5, 1.0, 4.0, math.inf]))
    return g, oag.Cluster(speeds=speeds, bandwidth=bandwidth, cores=cores), draw(st.integers(0, 3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph_and_cluster())
def test_decoder_and_guided_plans_are_valid_and_within_budget(gcm):
    g, c, model_seed = gcm
    model = random_model(model_seed)
    one = GNNScheduler(model=model, candidates="one").plan(g, c)
    assert_valid_schedule(one.schedule)
    assert one.schedule.makespan == one.makespans[one.chosen]
    assert 1 <= one.calls <= 4
    budget = 20
    plan = GNNScheduler(model=model, budget=budget).plan(g, c)
    assert_valid_schedule(plan.schedule)
    assert plan.calls <= 4 + 2 + budget + 1  # decoder, heft + serial, search, re-ranking
    assert plan.schedule.makespan <= heft(g, c) * (1 + 1e-9)
    assert plan.schedule.makespan <= serial(g, c) * (1 + 1e-9)
    assert plan.schedule.makespan <= one.schedule.makespan * (1 + 1e-9)
    again = GNNScheduler(model=model, budget=budget).plan(g, c)
    assert again.schedule.makespan == plan.schedule.makespan and again.calls == plan.calls


def test_fast_paths_skip_the_search():
    # Four equal independent tasks on four workers: HEFT meets the lower bound.
    G = nx.DiGraph()
    G.add_nodes_from([(f"t{i}", {"cost": 2.0}) for i in range(4)])
    g, c = oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(4)
    plan = GNNScheduler().plan(g, c)
    assert plan.schedule.makespan == 2.0 and plan.calls <= 3 and "+search" not in plan.chosen
    assert guided_budget(20) == TINY_BUDGET and guided_budget(1000) < guided_budget(100)
    tiny = GNNScheduler().plan(oag.random_dag(15, ccr=10.0, seed=1), oag.Cluster.homogeneous(3))
    assert tiny.calls <= 4 + 2 + TINY_BUDGET + 1


def test_targets_come_from_the_teachers_plan_and_cache(tmp_path):
    g, c = oag.random_dag(30, ccr=10.0, seed=5), oag.Cluster.homogeneous(4)
    t = search_target(g, c, seed=3)
    assert t.best <= t.heft and t.share is None
    assert t.colocated.shape == (len(g.edge_src),) and set(np.unique(t.colocated)) <= {0.0, 1.0}
    a = cached_target(g, c, 3, cache_dir=tmp_path)
    b = cached_target(g, c, 3, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 1
    for x, y in ((t.order, a.order), (a.order, b.order), (t.colocated, b.colocated)):
        assert np.array_equal(x, y)
    assert a.best == b.best == t.best


def test_weights_without_an_edge_head_still_load(tmp_path):
    m = SchedulerGCN(len(FEATURE_NAMES), 8, FEATURE_NAMES.index("rank_u"))
    save_model(m, tmp_path / "old.pt")
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.edge_channels == 0
    g, c = oag.random_dag(30, ccr=1.0, seed=1), oag.Cluster.homogeneous(3)
    plan = GNNScheduler(model=loaded).plan(g, c)
    assert plan.colocation is None
    assert_valid_schedule(plan.schedule)
    shipped = load_model()
    assert shipped.edge_channels == len(EDGE_FEATURE_NAMES)


def _digest(path: Path) -> str:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    for k, v in blob["state_dict"].items():
        h.update(k.encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()


def test_training_is_bit_reproducible_in_fresh_processes(tmp_path):
    """The CLI twice, in two processes (no shared cache): bit-identical weights."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    outs = []
    for k in range(2):
        out = tmp_path / f"w{k}.pt"
        subprocess.run([sys.executable, "-m", "openautoglm", "train-scheduler", "--seed", "0",
                        "--out", str(out), "--graphs", "5", "--epochs", "2", "--hidden", "8",
                        "--min-tasks", "8", "--max-tasks", "16"],
                       env=env, check=True, timeout=600, capture_output=True)
        outs.append(out)
    assert _digest(outs[0]) == _digest(outs[1])
    assert load_model(outs[0]).edge_channels == len(EDGE_FEATURE_NAMES)
