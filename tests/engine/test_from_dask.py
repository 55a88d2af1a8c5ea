"""from_dask: any Dask graph becomes a TaskGraph with the same keys, dependencies and specs."""
from __future__ import annotations

from operator import add, mul

import dask
import dask.array as da
import pytest
from dask._task_spec import Task, TaskRef

from openautoglm.engine.from_dask import collections_to_dsk, dask_default_cost, from_dask
from openautoglm.engine.engine import Engine
from openautoglm.core.graph import CycleError
from openautoglm.history.store import Execution, History


def test_raw_legacy_dict():
    g = from_dask({"x": 1, "y": (add, "x", 10), "z": (mul, "y", "x"), "w": (add, "x", 1)})
    assert set(g.tasks) == {"x", "y", "z", "w"}
    assert sorted(g.dependencies("z")) == ["x", "y"]
    assert sorted(g.nx.graph["dask_keys"]) == ["w", "z"]
    assert g.nx.nodes["x"]["cost"] == 0.0  # literal data costs nothing
    assert g.nx.nodes["y"]["cost"] == dask_default_cost("y") == 0.5


def test_requested_keys_and_missing_keys():
    dsk = {"x": 1, "y": (add, "x", 10)}
    assert from_dask(dsk, keys=["x"]).nx.graph["dask_keys"] == ["x"]
    with pytest.raises(KeyError, match="'nope'"):
        from_dask(dsk, keys=["nope"])
    # In a legacy tuple an unknown string is data; in a task spec a TaskRef must resolve.
    assert from_dask({"y": (add, "ghost", "-")}).tasks == ["y"]
    with pytest.raises(KeyError, match="depends on 'ghost'"):
        from_dask({"y": Task("y", add, TaskRef("ghost"), 1)})


def test_cycle_is_refused():
    with pytest.raises(CycleError, match="a -> b -> a|b -> a -> b"):
        from_dask({"a": (add, "b", 1), "b": (add, "a", 1)})


def test_delayed_and_array_keys_match_dask():
    @dask.delayed
    def inc(x):
        return x + 1

    total = dask.delayed(sum)([inc(i) for i in range(4)])
    g = from_dask(total)
    assert len(g) == 5  # four incs and the sum
    assert {g.nx.nodes[k]["identity"] for k in g.tasks} >= {"inc", "sum"}
    x = da.ones((40, 40), chunks=10).sum()
    dsk, keys, repack = collections_to_dsk(x)
    g = from_dask(dsk, keys)
    assert set(g.tasks) == set(dsk) and g.nx.graph["dask_keys"] == keys
    for k in g.tasks:
        assert set(g.dependencies(k)) == set(dsk[k].dependencies)
        assert g.nx.nodes[k]["dask"] is dsk[k]
    assert len(from_dask(x)) == len(dsk)  # the same graph (its finalize key is random)


def test_history_sets_costs():
    with History(":memory:") as h:
        h.record_run([Execution("y-1", "y", cost=3.0)])
        g = from_dask({"x": 1, "y": (add, "x", 10)}, history=h)
        assert g.nx.nodes["y"]["cost"] == 3.0


def test_wrong_type():
    with pytest.raises(TypeError, match="dask.delayed"):
        from_dask(42)
    with pytest.raises(TypeError, match="No Dask collection"):
        collections_to_dsk(1, "a")


def test_loaded_graph_runs_on_the_engine():
    g = from_dask({"x": 2, "y": (add, "x", 10), "z": (mul, "y", "x")})
    with Engine(n_workers=2, processes=False, dashboard=False, progress=False) as e:
        result = e.run(g, policy="heft")
    assert result["z"] == 24 and result.outputs == {"z": 24}


def test_compute_with_history_learns_dask_prefixes():
    """Executions of delayed tasks are pooled by key prefix; the next load uses them."""

    @dask.delayed(pure=False)
    def slowinc(x):
        import time

        time.sleep(0.05)
        return x + 1

    with History(":memory:") as h, \
            Engine(n_workers=2, processes=False, dashboard=False, progress=False) as e:
        assert e.compute([slowinc(i) for i in range(4)], history=h) == ([1, 2, 3, 4],)
        est = h.estimate("slowinc")
        assert est.n == 4 and est.cost == pytest.approx(0.05, abs=0.04)
        g = from_dask(slowinc(10), history=h)
        (key,) = [k for k in g.tasks if g.nx.nodes[k]["identity"] == "slowinc"]
        assert g.nx.nodes[key]["cost_source"] == "history"
