"""Engine: the plan is what Dask really does (order, placement, shares, retries), and bad
requests are refused before anything runs. Every check reads what the scheduler recorded."""
from __future__ import annotations

import socket
import time

import dask
import networkx as nx
import numpy as np
import pytest
import torch

from openautoglm.engine import dispatch as ex
from openautoglm.core.cluster import Cluster
from openautoglm.engine.engine import Engine, EngineError, compute
from openautoglm.core.graph import TaskGraph
from openautoglm.history.store import History
from openautoglm.pipeline import Pipeline, Task, TaskFailedError
from openautoglm.simulate.list_scheduler import list_schedule


def nap(seconds: float, *args: object) -> float:
    time.sleep(seconds)
    return seconds


def independent_pipeline(n: int, seconds: float = 0.02) -> Pipeline:
    return Pipeline("independent", [
        Task(f"t{i:02d}", func=lambda *a, s=seconds: nap(s), output_key=f"o{i:02d}") for i in range(n)
    ])


@pytest.fixture
def engine1():
    with Engine(n_workers=1, processes=False, dashboard=False, progress=False) as e:
        yield e


@pytest.fixture
def engine2():
    with Engine(n_workers=2, processes=False, dashboard=False, progress=False) as e:
        yield e


def realised_order(result) -> list:
    return [t["task"] for t in sorted(result.times, key=lambda t: t["start"])]


def test_pipeline_outputs_every_key(engine2):
    p = Pipeline("text", [
        Task("clean", func=lambda s: s.strip().lower(), input_key="raw", output_key="text"),
        Task("words", func=str.split, input_key="text", output_key="words"),
        Task("count", func=len, input_key="words", output_key="n"),
    ])
    out = p.run(engine=engine2, raw="  Hello Big World ")
    assert dict(out) == {"raw": "  Hello Big World ", "text": "hello big world",
                         "words": ["hello", "big", "world"], "n": 3}
    assert out.makespan >= 0 and len(out.times) == 3


def test_priority_from_the_plan_is_the_order_dask_used(engine1):
    """One worker, one thread, 12 independent tasks: Dask must run them exactly in the plan's
    (shuffled) order, not in its own dask.order."""
    p = independent_pipeline(12)
    g = p.compile()
    prio = np.random.default_rng(3).permutation(len(g)).astype(float)
    plan = list_schedule(g, engine1.cluster_model(), priority=prio)
    result = engine1.run(p, plan=plan)
    assert realised_order(result) == plan.start_order()
    assert plan.start_order() != sorted(plan.start_order())  # the shuffle did change the order


def test_heft_policy_longest_first(engine1):
    """HEFT on one worker runs independent tasks by upward rank: the costliest first."""
    G = nx.DiGraph()
    for i, c in enumerate([0.01, 0.05, 0.03, 0.04, 0.02]):
        G.add_node(f"job{i}", cost=c, task=Task(f"job{i}", func=lambda c=c: nap(c)))
    result = engine1.run(TaskGraph.from_networkx(G), policy="heft")
    assert realised_order(result) == ["job1", "job3", "job2", "job4", "job0"]


def test_placement_pins_tasks_to_the_planned_worker(engine2):
    """The plan puts tasks on workers against Dask's own choice (all on worker 1, then
    alternate); the recorded worker of every task is the planned one."""
    p = independent_pipeline(10, seconds=0.01)
    g = p.compile()
    workers = np.array([1, 1, 1, 1, 0, 1, 0, 1, 1, 1])
    plan = list_schedule(g, engine2.cluster_model(), priority=-np.arange(10.0), workers=workers)
    result = engine2.run(p, plan=plan)
    placed = {t["task"]: t["worker"] for t in result.times}
    assert placed == {k: plan.placements[k].worker for k in g.tasks}
    assert sum(w == 1 for w in placed.values()) == 8


def threads_seen(*args: object) -> int:
    time.sleep(0.05)
    return torch.get_num_threads()


def test_share_sets_threads_and_holds_the_cores():
    """A task planned with 2 cores of a 2-thread worker runs with torch threads = 2 and alone:
    its interval overlaps no other task on that worker. Threads are restored after."""
    with Engine(n_workers=1, threads_per_worker=2, processes=False, dashboard=False,
                progress=False) as e:
        p = Pipeline("share", [Task("wide", func=threads_seen, output_key="wide"),
                               Task("a", func=threads_seen, output_key="a"),
                               Task("b", func=threads_seen, output_key="b")])
        g = p.compile()
        cores = np.array([2 if k == "wide" else 1 for k in g.tasks])
        prio = np.array([0.0 if k == "wide" else 1.0 for k in g.tasks])  # wide planned last
        plan = list_schedule(g, e.cluster_model(), priority=prio, cores=cores)
        result = e.run(p, plan=plan)
        assert result["wide"] == 2 and result["a"] == 1 and result["b"] == 1
        rows = {t["task"]: t for t in result.times}
        wide = rows["wide"]
        for other in ("a", "b"):
            assert rows[other]["finish"] <= wide["start"] + 1e-3 or rows[other]["start"] >= wide["finish"] - 1e-3
        assert torch.get_num_threads() == 1


def test_unsatisfiable_resources_refused_before_submission(engine2, tmp_path):
    marker = tmp_path / "ran"
    p = Pipeline("gpu", [Task("prep", func=lambda: marker.write_text("x"), output_key="p"),
                         Task("train", func=lambda x: x, input_key="p", resources={"GPU": 1})])
    with pytest.raises(EngineError, match=r"'train' asks for resources \{'GPU': 1\}.*--resources"):
        engine2.run(p)
    assert not marker.exists()


def test_resources_the_cluster_has_are_granted():
    with Engine(n_workers=2, processes=False, dashboard=False, progress=False,
                resources={"GPU": 1}) as e:
        p = Pipeline("gpu", [Task("train", func=lambda: "trained", resources={"GPU": 1})])
        assert e.run(p)["train"] == "trained"


class Flaky:
    """Fails the first ``n`` calls in this process (workers are threads here)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self) -> str:
        self.n -= 1
        if self.n >= 0:
            raise ConnectionError("transient")
        return "ok"


def test_retries_then_success_and_history_keeps_the_failed_attempt(engine2):
    h = History(":memory:")
    p = Pipeline("flaky", [Task("fetch", func=Flaky(2), retries=2)])
    result = engine2.run(p, history=h)
    assert result["fetch"] == "ok"
    rows = h.executions(result.run_id)
    assert [r["status"] for r in rows].count("error") == 2
    assert [r["status"] for r in rows].count("ok") == 1
    assert "ConnectionError" in next(r["error"] for r in rows if r["status"] == "error")


def boom(x: object) -> None:
    raise ValueError("bad row 17")


def test_failure_names_the_task_keeps_partial_outputs_and_cancels_dependents(engine2):
    """
    load --> parse (raises) --> summarise
      \\--> stats
    """
    h = History(":memory:")
    p = Pipeline("etl", [
        Task("load", func=lambda: [1, 2, 3], output_key="rows"),
        Task("stats", func=len, input_key="rows", output_key="n"),
        Task("parse", func=boom, input_key="rows", output_key="parsed", retries=1),
        Task("summarise", func=str, input_key="parsed", output_key="summary"),
    ])
    g = p.compile()
    order = {"load": 4.0, "stats": 3.0, "parse": 2.0, "summarise": 1.0}
    plan = list_schedule(g, engine2.cluster_model(), priority=[order[k] for k in g.tasks],
                         workers=[0] * len(g))
    with pytest.raises(TaskFailedError, match="'parse' failed after 2 attempt") as info:
        engine2.run(p, plan=plan, history=h)
    err = info.value
    assert err.partial["rows"] == [1, 2, 3] and err.partial["n"] == 3
    assert "summary" not in err.partial and "parsed" not in err.partial
    assert isinstance(err.__cause__, ValueError) and "bad row 17" in str(err.__cause__)
    assert "boom" in err.traceback
    status = {t["task"]: t["status"] for t in err.result.times}
    assert status == {"load": "ok", "stats": "ok", "parse": "error", "summarise": "cancelled"}
    rows = h.executions(err.result.run_id)
    assert sum(r["task"] == "parse" and r["status"] == "error" for r in rows) == 2
    assert h.runs()[-1]["status"] == "error"


def test_compute_is_a_drop_in_for_dask_compute(engine2):
    import dask.array as da

    @dask.delayed
    def inc(x):
        return x + 1

    x = da.arange(20, chunks=5)
    values = [inc(i) for i in range(5)]
    total = dask.delayed(sum)(values)
    expected = dask.compute(x.sum(), total, {"v": values[0]}, scheduler="sync")
    got = compute(x.sum(), total, {"v": values[0]}, engine=engine2, policy="heft")
    assert got == expected


def test_compute_with_its_own_engine():
    @dask.delayed
    def double(x):
        return 2 * x

    assert compute(double(21), n_workers=1, processes=False, dashboard=False,
                   progress=False) == (42,)


def test_unreachable_address_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    t = time.monotonic()
    with pytest.raises(EngineError, match=f"tcp://127.0.0.1:{port}.*dask scheduler"):
        Engine(f"tcp://127.0.0.1:{port}", timeout=1.0)
    assert time.monotonic() - t < 10


def test_history_refines_the_next_plan_and_seeds_dask(engine2):
    """After a run, the next plan uses measured costs, and Dask's own duration estimate for
    the task's prefix is the measured one."""
    h = History(":memory:")
    p = Pipeline("seeded", [Task("slowstep", func=lambda: nap(0.1), cost=5.0)])
    engine2.run(p, history=h)
    graph, plan = engine2.plan(p.compile(), history=h)
    assert graph.nx.nodes["slowstep"]["cost"] == pytest.approx(0.1, abs=0.05)
    assert plan.makespan == pytest.approx(0.1, abs=0.05)
    engine2.run(p, history=h)

    def duration(dask_scheduler):
        return dask_scheduler.task_prefixes["slowstep"].duration_average

    assert engine2.client.run_on_scheduler(duration) == pytest.approx(0.1, abs=0.05)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="n_workers"):
        Engine(n_workers=0, processes=False, dashboard=False)
    with Engine(n_workers=1, processes=False, dashboard=False, progress=False) as e:
        with pytest.raises(TypeError, match="engine.compute"):
            e.run([1, 2, 3])
        G = nx.DiGraph()
        G.add_node("orphan", cost=1.0)
        with pytest.raises(ValueError, match="neither a 'task'.*nor a 'dask'"):
            e.run(TaskGraph.from_networkx(G))
        g = independent_pipeline(2).compile()
        plan = list_schedule(g, Cluster.homogeneous(3), priority=[1.0, 0.0])
        with pytest.raises(ValueError, match="plan is for 3 workers"):
            e.run(g, plan=plan)


def test_dashboard_link_is_reported():
    with Engine(n_workers=1, processes=False, dashboard=True, progress=False) as e:
        assert e.dashboard_link and e.dashboard_link.startswith("http")
        assert e.dashboard_link in repr(e)
    assert ex.SHARE_UNITS == 1000


def test_progress_bar_for_a_longer_run(monkeypatch):
    """Past one second the engine shows a rich progress bar (and the run is unaffected)."""
    import rich.progress

    started = []
    real_start = rich.progress.Progress.start
    monkeypatch.setattr(rich.progress.Progress, "start",
                        lambda self: (started.append(self), real_start(self))[1])
    with Engine(n_workers=1, processes=False, dashboard=False, progress=True) as e:
        p = Pipeline("slow", [Task(f"s{i}", func=lambda: nap(0.3)) for i in range(5)])
        result = e.run(p)
    assert len(result.times) == 5 and all(t["status"] == "ok" for t in result.times)
    assert len(started) == 1
    assert started[0].tasks[0].completed == 5
