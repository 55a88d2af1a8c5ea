"""oag.compute's per-run mode (strict pins, priorities only, or plain Dask), on a real
LocalCluster: the results are Dask's, the mode and its reason are in the run and in history,
repeated computes plan once, a drifting run loses its pins. No timed assertions."""
from __future__ import annotations

import time

import dask
import pytest
import torch

import openautoglm as oag
from openautoglm.engine.estimate import estimate_costs, observed_overhead
from openautoglm.engine.modes import decide, decisions

torch.set_num_threads(1)

#: Seconds each kind of task sleeps; the drift test changes one while a test runs.
SECONDS = {"heavy_step": 0.2, "light_step": 0.01, "join": 0.0}


def _nap(name: str):
    def f(*deps: object) -> str:
        time.sleep(SECONDS[name])
        return name

    f.__name__ = name
    return dask.delayed(f, pure=False)


def late_heavy_chains():
    r"""Five chains of eight light steps, then one chain of four heavy steps (built last).

        light x8  light x8 ... (5)   heavy x4
              \        |              /
               +------ join ---------+

    Dask's order (which counts tasks, not seconds) runs the light chains first and the heavy
    one last, alone on one worker; starting it first saves about a third of the makespan.
    """
    light, heavy, join = _nap("light_step"), _nap("heavy_step"), _nap("join")
    outs = []
    for c in range(5):
        x = light(c)
        for _ in range(7):
            x = light(x)
        outs.append(x)
    outs.append(heavy(heavy(heavy(heavy(0)))))
    return join(*outs)


@pytest.fixture
def engine2():
    with oag.Engine(n_workers=2, processes=False, dashboard=False, progress=False) as e:
        yield e


def test_decide_steps_aside_unless_the_gain_beats_the_uncertainty():
    times = {"dask": 10.0, "priorities": 7.5, "strict": 6.5}
    assert decide(times, uncertainty=0.05)[0] == "strict"
    assert decide(times, uncertainty=0.3)[0] == "priorities"       # 25% > 5% + 15%
    assert decide(times, uncertainty=0.5)[0] == "dask"             # 25% < 5% + 25%
    mode, reason = decide(times, uncertainty=0.9, requested="strict")
    assert mode == "strict" and "forced" in reason
    # Pins must add a gain of their own over priorities.
    assert decide({"dask": 10.0, "priorities": 8.0, "strict": 7.8}, 0.05)[0] == "priorities"


def test_first_run_steps_aside_and_the_decision_is_recorded(engine2):
    h = oag.History(":memory:")
    got = engine2.compute(late_heavy_chains(), history=h)
    assert got == ("join",)
    d = engine2.last_run.decision
    assert d.mode == "dask" and "default guess" in d.reason
    assert [r["mode"] for r in decisions(h)] == ["dask"]
    assert decisions(h)[0]["run_id"] == engine2.last_run.run_id
    assert h.estimate("heavy_step").n == 4   # the step-aside run still taught history


def test_with_history_an_order_sensitive_graph_is_planned(engine2):
    h = oag.History(":memory:")
    engine2.compute(late_heavy_chains(), history=h)
    assert engine2.compute(late_heavy_chains(), history=h) == ("join",)
    d = engine2.last_run.decision
    assert d.mode in ("priorities", "strict"), d.reason
    assert d.gain() > 0.05 + d.uncertainty / 2
    assert d.predicted["dask"] > d.predicted[d.mode]
    assert [r["mode"] for r in decisions(h)][-1] == d.mode


def test_an_order_insensitive_graph_steps_aside_even_with_history(engine2):
    """Independent tasks of one cost: no order beats Dask's, so the plan stays out."""
    nap = _nap("light_step")
    h = oag.History(":memory:")
    for _ in range(2):
        assert engine2.compute([nap(i) for i in range(20)], history=h) == (["light_step"] * 20,)
    d = engine2.last_run.decision
    assert d.mode == "dask" and "stepped aside" in d.reason


def test_forced_modes_pin_or_not_and_repeated_computes_plan_once(engine2):
    h = oag.History(":memory:")
    engine2.compute(late_heavy_chains(), history=h)
    engine2.compute(late_heavy_chains(), history=h, mode="strict")
    first = engine2.last_run
    assert first.decision.mode == "strict"
    assert first.estimate_error()["placement_match"] == 1.0
    engine2.compute(late_heavy_chains(), history=h, mode="strict")
    assert engine2.last_run.decision.cached            # same shape: the plan is reused
    engine2.compute(late_heavy_chains(), history=h, mode="priorities")
    assert engine2.last_run.decision.mode == "priorities"
    assert engine2.compute(late_heavy_chains(), history=h, mode="dask") == ("join",)
    assert engine2.last_run.decision.mode == "dask"
    with pytest.raises(ValueError, match="mode='fast'.*'auto'"):
        engine2.compute(late_heavy_chains(), mode="fast")


def test_drift_releases_the_pins(engine2):
    """History says heavy steps take 0.2 s; now they take 1 s: the watcher lets go."""
    h = oag.History(":memory:")
    engine2.compute(late_heavy_chains(), history=h)
    SECONDS["heavy_step"] = 1.0
    try:
        assert engine2.compute(late_heavy_chains(), history=h, mode="strict") == ("join",)
    finally:
        SECONDS["heavy_step"] = 0.2
    corrections = engine2.last_run.decision.corrections
    assert len(corrections) == 1 and "released" in corrections[0] and "heavy_step" in corrections[0]


def test_costs_from_what_dask_measured_on_the_cluster(engine2):
    """Plain Dask ran the workload before: its per-prefix averages become the costs."""
    dask.compute(late_heavy_chains(), scheduler=engine2.client)
    g = oag.from_dask(late_heavy_chains())
    g, summary = estimate_costs(g, engine2.client)
    heavy = [k for k in g.tasks if g.nx.nodes[k]["identity"] == "heavy_step"]
    assert {g.nx.nodes[k]["cost_source"] for k in heavy} == {"dask-measured"}
    assert summary.trustworthy and 0 < summary.uncertainty < 1
    assert all(0.05 < g.nx.nodes[k]["cost"] < 5 for k in heavy)


def test_observed_overhead_is_the_median_idle_gap():
    import networkx as nx

    G = nx.DiGraph()
    G.add_nodes_from((f"t{i}", {"cost": 1.0}) for i in range(12))
    g = oag.TaskGraph.from_networkx(G)
    # One worker, one thread: each task starts 0.25 s after the previous one finished.
    times = [{"task": f"t{i}", "worker": 0, "start": i * 1.25, "finish": i * 1.25 + 1.0}
             for i in range(12)]
    assert observed_overhead(times, g, [1]) == pytest.approx(0.25)
    assert observed_overhead(times[:5], g, [1]) is None


def test_strict_pins_hold_on_process_workers():
    """Separate worker processes: pinned tasks run where the plan put them, results correct."""
    import dask.array as da

    h = oag.History(":memory:")
    with oag.Engine(n_workers=2, processes=True, dashboard=False, progress=False) as e:
        x = da.arange(400, chunks=50)
        e.compute((x * 2).sum(), history=h)
        assert e.compute((x * 2).sum(), history=h, mode="strict") == (159600,)
        assert e.last_run.decision.mode == "strict"
        assert e.last_run.estimate_error()["placement_match"] == 1.0


#: The worker the first critical step ran on turns 5x slower from then on (set by that step).
STRAGGLER: dict[str, str | None] = {"worker": None}


def _critical_step(*deps: object) -> str:
    from distributed import get_worker

    me = get_worker().address
    if STRAGGLER["worker"] is None:
        STRAGGLER["worker"] = me
        time.sleep(0.2)
    else:
        time.sleep(0.2 * (5 if me == STRAGGLER["worker"] else 1))
    return "critical_step"


def straggler_chain():
    """A chain of four 0.2 s critical steps beside 8 light jobs; the worker of the first step
    slows down 5x mid-run."""
    _critical_step.__name__ = "critical_step"
    step = dask.delayed(_critical_step, pure=False)
    light = _nap("light_step")
    x = step(step(step(step())))
    return _nap("join")(x, *[light(i) for i in range(8)])


def test_backup_beats_a_straggler(engine2):
    h = oag.History(":memory:")
    STRAGGLER["worker"] = "nobody"          # learn the costs at full speed
    engine2.compute(straggler_chain(), history=h)
    STRAGGLER["worker"] = None
    assert engine2.compute(straggler_chain(), history=h, mode="strict", backup=True) == ("join",)
    corrections = engine2.last_run.decision.corrections
    assert any(c.startswith("backup of") and "critical_step" in c for c in corrections), corrections
    slow = STRAGGLER["worker"]
    chain = [t for t in engine2.last_run.times if t["identity"] == "critical_step"]
    assert len(chain) == 4 and all(t["status"] == "ok" for t in chain)
    # The backed-up steps finished on the other worker.
    addr = engine2.last_run.workers
    assert any(addr[t["worker"]] != slow for t in chain[1:])


def test_p2p_rechunk_keeps_its_own_placement(engine2):
    """Regression: a P2P rechunk restricts its output tasks to the workers holding their
    shards; pins (and releasing pins) must not touch them. Strict becomes priorities."""
    import dask.array as da
    import numpy as np

    x = da.random.default_rng(0).random((400, 400), chunks=(400, 20))
    expected = x.compute(scheduler="sync").sum(axis=1)
    h = oag.History(":memory:")
    with dask.config.set({"array.rechunk.method": "p2p"}):
        for mode in ("auto", "strict", "priorities"):
            (got,) = engine2.compute(x.rechunk((20, 400)).sum(axis=1), history=h, mode=mode)
            np.testing.assert_allclose(got, expected)
    d = engine2.last_run.decision
    assert d.mode == "priorities"
    assert [r["mode"] for r in decisions(h)][1] == "priorities"   # strict was asked for
    assert "P2P" in decisions(h)[1]["reason"]
