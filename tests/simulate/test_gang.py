"""Gang tasks (``gang=k``: k workers at once) in the graph, the Schedule, the checker, the lower
bound, the list scheduler and every policy."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import openautoglm as oag
from openautoglm.simulate.schedule import InvalidScheduleError, Schedule, check_schedule, lower_bound
from openautoglm.testing import assert_valid_schedule


def graph(nodes: dict, edges: dict | None = None) -> oag.TaskGraph:
    G = nx.DiGraph()
    for k, attrs in nodes.items():
        G.add_node(k, **attrs)
    for (u, v), size in (edges or {}).items():
        G.add_edge(u, v, size=size)
    return oag.TaskGraph.from_networkx(G)


def test_gang_cost_models():
    g = graph({"amdahl": {"cost": 8.0, "gang": 4, "gang_parallel": 0.75, "gang_comm": 0.5},
               "table": {"gang": 2, "gang_costs": {2: 5.0, 4: 3.0}},
               "ideal": {"cost": 6.0, "gang": 3},
               "single": {"cost": 2.0}})
    assert g.cost.tolist() == [8.0 * (0.25 + 0.75 / 4) + 0.5 * 3, 5.0, 2.0, 2.0]
    assert g.gang.tolist() == [4, 2, 3, 1]


@pytest.mark.parametrize(("attrs", "match"), [
    ({"cost": 1.0, "gang": 0}, r"task 't': gang=0 must be an integer >= 1"),
    ({"cost": 1.0, "gang": 2.5}, "gang=2.5 must be an integer"),
    ({"gang": 2, "gang_costs": {4: 1.0}}, r"no entry for its gang=2; give \{2: seconds\}"),
    ({"cost": 1.0, "gang": 2, "gang_parallel": 1.5}, r"gang_parallel=1.5 must lie in \[0, 1\]"),
    ({"cost": 1.0, "gang": 2, "gang_comm": -1}, "gang_comm=-1.0 must be finite"),
    ({"costs": [1.0, 2.0], "gang": 2}, "cannot carry per-worker 'costs'"),
])
def test_bad_gang_attributes_are_refused_by_name(attrs, match):
    with pytest.raises(ValueError, match=match):
        graph({"t": attrs})


def test_gang_starts_when_k_workers_are_free_together_and_data_reached_all():
    """::

        worker 0  |-a-|      |==g==|        a (cost 1) -> g: same worker, no transfer
        worker 1  |-----b-----|==g==|       b (cost 3) busy until 3; a's data arrives at 3
        worker 2  |                         a's data arrives at 1 + 2 = 3

    g (gang 2, 2 s on 2 workers) can start at 3 on any two: a tie, broken to the lower ones.
    """
    g = graph({"a": {"cost": 1.0}, "b": {"cost": 3.0}, "g": {"gang": 2, "gang_costs": {2: 2.0}}},
              {("a", "g"): 2.0})
    s = oag.list_schedule(g, oag.Cluster.homogeneous(3), priority=[2, 1, 0])
    assert s.placements["g"] == oag.Placement(0, 3.0, 5.0)
    assert s.gangs["g"] == (0, 1)
    assert_valid_schedule(s)


def test_gang_fills_an_idle_gap_common_to_k_workers():
    """Insertion: both workers idle in [2, 6) (after x and y, before the late z and w), so the
    gang of 2 (3 s) placed last runs there, not after 8."""
    g = graph({"x": {"cost": 2.0}, "y": {"cost": 2.0}, "r": {"cost": 6.0},
               "z": {"cost": 2.0}, "w": {"cost": 2.0}, "g": {"gang": 2, "gang_costs": {2: 3.0}}},
              {("r", "z"): 0.0, ("r", "w"): 0.0})
    c = oag.Cluster.homogeneous(3)
    # r on worker 2 until 6; z and w after it on workers 0 and 1 (pinned): gaps [2, 6) there.
    s = oag.list_schedule(g, c, priority=[5, 4, 6, 3, 2, 1], workers=[0, 1, 2, 0, 1, -1])
    assert s.placements["z"].start == 6.0 and s.placements["w"].start == 6.0
    assert s.placements["g"].start == 2.0 and sorted(s.gangs["g"]) == [0, 1]
    assert_valid_schedule(s)


def test_schedule_refuses_invalid_gang_placements():
    g = graph({"a": {"cost": 2.0}, "g": {"gang": 2, "gang_costs": {2: 2.0}}, "h": {"cost": 1.0}},
              {("a", "g"): 1.0})
    s = Schedule(g, oag.Cluster.homogeneous(3))
    s.add("a", 0, 0.0)
    with pytest.raises(InvalidScheduleError, match=r"'g' is a gang of 2: give 2 distinct workers"):
        s.add("g", 0, 3.0)
    with pytest.raises(InvalidScheduleError, match="2 distinct workers"):
        s.add("g", (1, 1), 3.0)
    with pytest.raises(InvalidScheduleError, match=r"worker 1: the data of dependency 'a'.*arrives at 3"):
        s.add("g", (0, 1), 2.5)
    with pytest.raises(InvalidScheduleError, match="a single task takes one worker"):
        s.add("h", (1, 2), 0.0)
    s.add("h", 2, 3.0)
    with pytest.raises(InvalidScheduleError, match="worker 2 over-subscribes"):
        s.add("g", (0, 2), 3.0)
    p = s.add("g", (1, 0), 3.0)
    assert p == oag.Placement(1, 3.0, 5.0) and s.gangs["g"] == (1, 0)
    assert check_schedule(s) == []


def test_checker_sees_a_gang_member_overlapping_another_task():
    g = graph({"g": {"gang": 2, "gang_costs": {2: 2.0}}, "h": {"cost": 2.0}})
    s = Schedule(g, oag.Cluster.homogeneous(2))
    s.add("g", (0, 1), 0.0)
    s.add("h", 0, 2.0)
    s.placements["h"] = oag.Placement(1, 1.0, 3.0)  # moved behind the Schedule's back
    assert any("worker 1 runs 2 cores" in p for p in check_schedule(s))
    s.gangs["g"] = (0, 0)
    assert any("2 distinct workers" in p for p in check_schedule(s))


def test_lower_bound_counts_every_member():
    """Two gangs of 4 (2 s each on 4 workers) cannot overlap: the work bound is 4."""
    g = graph({"g1": {"gang": 4, "gang_costs": {4: 2.0}}, "g2": {"gang": 4, "gang_costs": {4: 2.0}}})
    c = oag.Cluster.homogeneous(4)
    assert lower_bound(g, c) == 4.0
    s = oag.schedule(g, c, policy="heft")
    assert s.makespan == 4.0
    assert_valid_schedule(s)


def test_a_gang_larger_than_the_cluster_is_refused():
    g = graph({"g": {"cost": 1.0, "gang": 5}})
    with pytest.raises(ValueError, match=r"'g' needs 5 workers at once but only 4 can run it"):
        oag.list_schedule(g, oag.Cluster.homogeneous(4), priority=[0])


def test_milp_refuses_gangs_clearly():
    g = graph({"g": {"cost": 1.0, "gang": 2}, "a": {"cost": 1.0}})
    with pytest.raises(ValueError, match=r"one worker per task; tasks \[.g.\] are gangs"):
        oag.schedule(g, oag.Cluster.homogeneous(2), policy="optimal")


def gang_dag(n: int, seed: int, fraction: float, workers: int) -> oag.TaskGraph:
    """A random DAG (DAGGEN) with ``fraction`` of its tasks made gangs of 2..4 workers."""
    base = oag.random_dag(n, ccr=1.0, seed=seed)
    rng = np.random.default_rng(seed)
    G = base.nx.copy()
    for k in G.nodes:
        G.nodes[k].pop("task", None)
        if rng.random() < fraction:
            G.nodes[k]["gang"] = int(rng.integers(2, min(4, workers) + 1))
            G.nodes[k]["gang_parallel"] = float(rng.uniform(0.6, 1.0))
            G.nodes[k]["gang_comm"] = float(rng.uniform(0.0, 0.1)) * G.nodes[k]["cost"]
    return oag.TaskGraph.from_networkx(G)


POLICIES = ["heft", "cpop", "critical_path", "fifo", "random", "gnn"]


@settings(max_examples=8, deadline=None)
@given(n=st.integers(2, 16), seed=st.integers(0, 10_000), workers=st.integers(2, 6),
       fraction=st.floats(0.1, 0.5), cores=st.integers(1, 2))
def test_every_policy_plans_gangs_validly_and_above_the_bound(n, seed, workers, fraction, cores):
    g = gang_dag(n, seed, fraction, workers)
    c = oag.Cluster(speeds=list(np.linspace(1.0, 2.0, workers)), cores=[cores] * workers)
    for policy in POLICIES:
        s = oag.schedule(g, c, policy=policy)
        assert_valid_schedule(s)
        for key, members in s.gangs.items():
            assert len(set(members)) == g.gang[g.index[key]]


def test_the_engine_refuses_gangs_on_in_process_workers_before_running_anything():
    """Gangs run on Dask (tests/engine/test_gang.py), but only one rank per worker process."""
    from openautoglm.engine import Engine, EngineError
    from openautoglm.pipeline import Pipeline, Task

    p = Pipeline("p", [Task("g", func=lambda *, gang: gang.rank, gang=2)])
    with Engine(n_workers=2, dashboard=False, progress=False) as engine:
        with pytest.raises(EngineError, match=r"gang task 'g'.*one process per worker"):
            engine.run(p)


def test_gantt_draws_every_member(tmp_path):
    g = graph({"g": {"gang": 3, "gang_costs": {3: 2.0}}, "h": {"cost": 1.0}})
    s = oag.list_schedule(g, oag.Cluster.homogeneous(4), priority=[1, 0])
    ax = s.gantt(tmp_path / "gantt.png")
    rows = sorted(round(bar.get_paths()[0].vertices[:, 1].min()) for bar in ax.collections)
    assert rows == [0, 1, 2, 3]  # g on 3 workers, h on the fourth
    assert (tmp_path / "gantt.png").exists()
