"""Schedule (placements refused when invalid), lower_bound, list_schedule: hand-computed cases."""
from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import openautoglm as oag
from openautoglm.simulate import _kernel
from openautoglm.simulate.list_scheduler import list_makespan
from openautoglm.testing import assert_valid_schedule
from openautoglm.simulate.schedule import check_schedule


def by_task(g, values):
    """Per-task array in the graph's order from a dict keyed by task."""
    return [values[k] for k in g.tasks]


def graph(edges, costs, **node_attrs):
    G = nx.DiGraph()
    for k, c in costs.items():
        G.add_node(k, cost=c, **{a: v[k] for a, v in node_attrs.items() if k in v})
    for u, v, s in edges:
        G.add_edge(u, v, size=s)
    return oag.TaskGraph.from_networkx(G)


@pytest.fixture
def fork():
    """::

          a (2)
         / \\        sizes 3 and 1
    (4) b   c (1)
    """
    return graph([("a", "b", 3.0), ("a", "c", 1.0)], {"a": 2.0, "b": 4.0, "c": 1.0})


def test_add_computes_finish_from_the_cost_model(fork):
    s = oag.Schedule(fork, oag.Cluster(speeds=[1.0, 2.0]))
    assert s.add("a", 1, 0.0) == oag.Placement(1, 0.0, 1.0)
    assert s.add("b", 0, 4.0) == (0, 4.0, 8.0)   # data arrives 1 + 3
    assert s.add("c", 1, 1.0).finish == 1.5       # same worker: no transfer
    assert s.makespan == 8.0 and s.complete
    s.validate()
    assert_valid_schedule(s)
    w, start, finish = s.placements["b"]
    assert (w, start, finish) == (0, 4.0, 8.0)


class TestAddRefuses:
    def test_unknown_task(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2))
        with pytest.raises(oag.InvalidScheduleError, match="unknown task 'z'"):
            s.add("z", 0, 0.0)

    def test_placed_twice(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2))
        s.add("a", 0, 0.0)
        with pytest.raises(oag.InvalidScheduleError, match="placed twice"):
            s.add("a", 1, 5.0)

    def test_dependency_not_placed(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2))
        with pytest.raises(oag.InvalidScheduleError, match="depends on 'a', which is not placed"):
            s.add("b", 0, 10.0)

    def test_dependency_not_finished(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2))
        s.add("a", 0, 0.0)
        with pytest.raises(oag.InvalidScheduleError, match="dependency 'a' finishes at 2"):
            s.add("b", 0, 1.5)

    def test_data_not_arrived(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2, bandwidth=2.0))
        s.add("a", 0, 0.0)
        with pytest.raises(oag.InvalidScheduleError, match="arrives at 3.5"):
            s.add("b", 1, 3.0)
        assert s.add("b", 1, 3.5).finish == 7.5

    def test_worker_busy(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2))
        s.add("a", 0, 0.0)
        s.add("b", 0, 2.0)  # busy [2, 6)
        with pytest.raises(oag.InvalidScheduleError, match="over-subscribes"):
            s.add("c", 0, 5.5)
        assert s.add("c", 0, 6.0).finish == 7.0  # back to back is fine

    def test_bad_worker_cores_start(self, fork):
        s = oag.Schedule(fork, oag.Cluster.homogeneous(2, cores=2))
        with pytest.raises(oag.InvalidScheduleError, match="worker 2 does not exist"):
            s.add("a", 2, 0.0)
        with pytest.raises(oag.InvalidScheduleError, match="cores=3"):
            s.add("a", 0, 0.0, cores=3)
        with pytest.raises(oag.InvalidScheduleError, match="start"):
            s.add("a", 0, -1.0)
        assert not s.placements


def test_multicore_capacity_and_parallel_fraction():
    """Four cores; ``p`` with parallel 0.5 on 2 cores runs 8 * (0.5 + 0.25) = 6."""
    g = graph([], {"p": 8.0, "q": 2.0, "r": 2.0, "t": 1.0}, parallel={"p": 0.5})
    s = oag.Schedule(g, oag.Cluster.homogeneous(1, cores=4))
    assert s.add("p", 0, 0.0, cores=2).finish == 6.0
    s.add("q", 0, 0.0, cores=2)           # cores 3-4 until 2
    with pytest.raises(oag.InvalidScheduleError, match="over-subscribes its 4 core"):
        s.add("r", 0, 1.0, cores=1)       # 4 busy at 1
    s.add("r", 0, 2.0, cores=2)           # free again from 2
    with pytest.raises(oag.InvalidScheduleError, match="over-subscribes"):
        s.add("t", 0, 3.0, cores=1)
    s.add("t", 0, 4.0, cores=1)
    assert s.cores == {"p": 2, "q": 2, "r": 2, "t": 1}
    assert_valid_schedule(s)


def test_validate_and_checker_catch_tampering(fork):
    s = oag.list_schedule(fork, oag.Cluster.homogeneous(2), [3, 2, 1])
    s.validate()
    s.placements["b"] = oag.Placement(0, 0.0, 4.0)  # overlaps a, before a's data
    problems = check_schedule(s)
    assert any("before the data" in p for p in problems)
    assert any("runs 2 cores" in p for p in problems)
    with pytest.raises(oag.InvalidScheduleError):
        s.validate()
    with pytest.raises(AssertionError, match="invalid schedule"):
        assert_valid_schedule(s)
    partial = oag.Schedule(fork, oag.Cluster.homogeneous(2))
    partial.add("a", 0, 0.0)
    assert "not placed" in check_schedule(partial)[0]
    assert check_schedule(partial, complete=False) == []


def test_lower_bound():
    chain = graph([("a", "b", 100.0)], {"a": 4.0, "b": 4.0})
    assert oag.lower_bound(chain, oag.Cluster(speeds=[1, 2])) == 4.0    # critical path / fastest
    wide = graph([], {k: 6.0 for k in "abcd"})
    assert oag.lower_bound(wide, oag.Cluster(speeds=[1, 2])) == 8.0     # 24 work / 3 speed
    assert oag.lower_bound(wide, oag.Cluster.homogeneous(1, cores=3)) == 8.0
    par = graph([], {"a": 8.0}, parallel={"a": 1.0})
    assert oag.lower_bound(par, oag.Cluster.homogeneous(1, cores=4)) == 2.0
    G = nx.DiGraph()
    G.add_node("x", costs=[10.0, 1.0])
    G.add_node("y", costs=[1.0, 10.0])
    lb = oag.lower_bound(oag.TaskGraph.from_networkx(G), oag.Cluster.homogeneous(2))
    assert lb == 1.0


def test_list_schedule_insertion_fills_gaps():
    """::

        a(1) -> b(1)  size 5: b waits on worker 1 until 6, or runs on worker 0 at 1
        c(3)          free; with insertion c fills worker 1's idle gap before b
    """
    g = graph([("a", "b", 5.0)], {"a": 1.0, "b": 1.0, "c": 3.0})
    assert g.tasks == ["a", "c", "b"]  # arrays follow the topological order
    c = oag.Cluster.homogeneous(2)
    prio = by_task(g, {"a": 3, "b": 2, "c": 1})
    pins = by_task(g, {"a": 0, "b": 1, "c": 1})
    s = oag.list_schedule(g, c, priority=prio)
    assert s.placements["a"] == (0, 0.0, 1.0)
    assert s.placements["b"] == (0, 1.0, 2.0)
    assert s.placements["c"] == (1, 0.0, 3.0)
    # A gap on worker 0: pin b to worker 1 (waits for data until 6); then an idle gap [0, 6)
    # on worker 1 takes c with insertion, or c goes after b without it.
    s_ins = oag.list_schedule(g, c, priority=prio, workers=pins)
    assert s_ins.placements["b"] == (1, 6.0, 7.0) and s_ins.placements["c"] == (1, 0.0, 3.0)
    s_app = oag.list_schedule(g, c, priority=prio, workers=pins, insertion=False)
    assert s_app.placements["c"] == (1, 7.0, 10.0)
    for s in (s, s_ins, s_app):
        assert_valid_schedule(s)


def test_list_schedule_priority_ties_by_topological_index():
    g = graph([], {"x": 1.0, "y": 1.0, "z": 1.0})
    s = oag.list_schedule(g, oag.Cluster.homogeneous(1), priority=[0, 0, 0])
    assert [s.placements[k].start for k in "xyz"] == [0.0, 1.0, 2.0]
    s = oag.list_schedule(g, oag.Cluster.homogeneous(1), priority=[0, 1, 0])
    assert [s.placements[k].start for k in "yxz"] == [0.0, 1.0, 2.0]
    assert s.start_order() == ["y", "x", "z"]


def test_list_schedule_cores_and_shares():
    g = graph([], {"a": 8.0, "b": 8.0}, parallel={"a": 1.0, "b": 1.0})
    c = oag.Cluster(speeds=[1.0, 1.0], cores=[4, 2])
    s = oag.list_schedule(g, c, [1, 0], cores=[4, 2])
    assert s.placements["a"] == (0, 0.0, 2.0) and s.cores["a"] == 4
    assert s.placements["b"] == (1, 0.0, 4.0) and s.cores["b"] == 2
    s = oag.list_schedule(g, c, [1, 0], shares=[1.0, 0.5])
    assert s.cores == {"a": 4, "b": 2}
    assert s.placements["a"] == (0, 0.0, 2.0) and s.placements["b"] == (0, 2.0, 6.0)
    for bad, match in (({"cores": [5, 1]}, "fits on no allowed worker"),
                       ({"cores": [1, 1], "shares": [1, 1]}, "not both"),
                       ({"shares": [0.0, 1.0]}, r"\(0, 1\]"),
                       ({"workers": [2, -1]}, "worker index"),
                       ({"cores": [3, 1], "workers": [1, -1]}, "fits on no allowed worker")):
        with pytest.raises(ValueError, match=match):
            oag.list_schedule(g, c, [1, 0], **bad)
    with pytest.raises(ValueError, match="one entry per task"):
        oag.list_schedule(g, c, [1, 0, 3])
    with pytest.raises(ValueError, match="finite"):
        oag.list_schedule(g, c, [np.nan, 0])


def test_list_schedule_multicore_insertion_packs_capacity():
    """Two 1-core tasks share a 2-core worker; a 2-core task waits for both."""
    g = graph([], {"a": 2.0, "b": 3.0, "c": 1.0}, parallel={"c": 0.0})
    s = oag.list_schedule(g, oag.Cluster.homogeneous(1, cores=2), [3, 2, 1], cores=[1, 1, 2])
    assert s.placements["a"] == (0, 0.0, 2.0) and s.placements["b"] == (0, 0.0, 3.0)
    assert s.placements["c"] == (0, 3.0, 4.0)
    assert_valid_schedule(s)


def test_to_dataframe_and_gantt(tmp_path, fork):
    s = oag.schedule(fork, oag.Cluster.homogeneous(2, cores=2))
    df = s.to_dataframe()
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["task", "worker", "start", "finish", "duration", "cores"]
    assert set(df.task) == {"a", "b", "c"} and (df.finish - df.start == df.duration).all()
    path = tmp_path / "gantt.png"
    ax = s.gantt(path=str(path))
    assert path.stat().st_size > 1000 and ax.get_title().startswith("makespan")


@pytest.mark.skipif(not _kernel.HAVE_NUMBA, reason="numba not installed")
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), W=st.integers(1, 5), seed=st.integers(0, 2**16),
       ccr=st.sampled_from([0.0, 1.0, 10.0]), insertion=st.booleans(),
       mode=st.sampled_from(["one", "shares", "pins"]))
def test_compiled_and_python_engines_agree(n, W, seed, ccr, insertion, mode):
    """The numba kernel is the Python loop compiled: same placements, cores and timelines."""
    rng = np.random.default_rng(seed)
    g = oag.random_dag(n, fat=rng.uniform(), density=rng.uniform(), ccr=ccr, seed=seed)
    c = oag.Cluster(speeds=rng.choice([1.0, 2.0, 3.0], W).tolist(), bandwidth=1.0,
                    cores=rng.integers(1, 4, W).tolist())
    kw = {"priority": rng.integers(0, 5, n).astype(float), "insertion": insertion}
    if mode == "shares":
        kw["shares"] = rng.choice([0.25, 0.5, 1.0], n)
    elif mode == "pins":
        kw["workers"] = rng.integers(-1, W, n)
    a = oag.list_schedule(g, c, engine="numba", **kw)
    b = oag.list_schedule(g, c, engine="python", **kw)
    assert a.placements == b.placements and a.cores == b.cores
    assert a._T == b._T and a._U == b._U and a._end.tolist() == b._end.tolist()
    assert_valid_schedule(a)


def test_engine_argument_checked(fork):
    with pytest.raises(ValueError, match="engine"):
        oag.list_schedule(fork, oag.Cluster.homogeneous(2), [1, 2, 3], engine="fast")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), W=st.integers(1, 5), seed=st.integers(0, 2**16),
       ccr=st.sampled_from([0.0, 1.0, 10.0]), insertion=st.booleans(),
       mode=st.sampled_from(["one", "shares", "pins", "parallel"]),
       engine=st.sampled_from(["auto", "python"]))
def test_list_makespan_is_list_schedule_without_the_schedule(n, W, seed, ccr, insertion, mode, engine):
    """The makespan-only path plans exactly what list_schedule plans, on both engines."""
    rng = np.random.default_rng(seed)
    g = oag.random_dag(n, fat=rng.uniform(), density=rng.uniform(), ccr=ccr, seed=seed)
    c = oag.Cluster(speeds=rng.choice([1.0, 2.0, 3.0], W).tolist(), bandwidth=1.0,
                    cores=rng.integers(1, 4, W).tolist())
    kw = {"priority": rng.integers(0, 5, n).astype(float), "insertion": insertion, "engine": engine}
    if mode == "shares":
        kw["shares"] = rng.choice([0.25, 0.5, 1.0], n)
    elif mode == "pins":
        kw["workers"] = rng.integers(-1, W, n)
    elif mode == "parallel":
        G = g.nx.copy()
        for k in G.nodes:
            G.nodes[k]["parallel"] = float(rng.uniform())
        g = oag.TaskGraph.from_networkx(G)
    s = oag.list_schedule(g, c, **kw)
    r = list_makespan(g, c, **kw)
    assert r.makespan == s.makespan
    assert [tuple(p) for p in map(s.placements.__getitem__, g.tasks)] == \
        list(zip(r.worker.tolist(), r.start.tolist(), r.finish.tolist()))


def test_list_makespan_checks_its_arguments_like_list_schedule(fork):
    c = oag.Cluster.homogeneous(2)
    with pytest.raises(ValueError, match="one entry per task"):
        list_makespan(fork, c, [1, 2])
    with pytest.raises(ValueError, match="workers must be"):
        list_makespan(fork, c, [1, 2, 3], workers=[0, 5, -1])
    with pytest.raises(ValueError, match="engine"):
        list_makespan(fork, c, [1, 2, 3], engine="fast")


def test_gantt_labels_never_overlap(tmp_path):
    """Forty 1 s tasks with long names and one 60 s task on two workers: the short bars are too
    narrow for their names, which used to be drawn anyway into an unreadable smear. Every label
    drawn must lie inside its bar and clear of every other label."""
    import matplotlib

    matplotlib.use("Agg")
    G = nx.DiGraph()
    for i in range(40):
        G.add_node(f"map_map_HEP2_MSP1_Digests_s_1_sequence_{i:03d}", cost=1.0)
    G.add_node("the_one_long_task_with_a_name_that_fits", cost=60.0)
    g = oag.TaskGraph.from_networkx(G)
    s = oag.schedule(g, oag.Cluster.homogeneous(2), policy="heft")
    ax = s.gantt(path=str(tmp_path / "g.png"))
    renderer = ax.figure.canvas.get_renderer()
    texts = [t for t in ax.texts if t.get_text()]
    assert any(t.get_text() == "the_one_long_task_with_a_name_that_fits" for t in texts)
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), "two task labels overlap"
